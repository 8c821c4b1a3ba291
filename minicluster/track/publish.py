"""Where a rank's numbers go: nowhere, or its own Prometheus endpoint.

`TrackCollector` reads the stats at scrape time (client_python's custom-collector
pattern), so the loop never calls Prometheus except for two histograms. Job, rank and
node labels come from the `/sd` target labels, not from here. psutil's `process_*` are
served too (prometheus_client's own process collector reads /proc, which macOS lacks).
`NullSink` is the same interface doing nothing. With the node's TLS files the endpoint
is mutual TLS (minicluster.track.tls); without them, plain HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator

import psutil
import torch.distributed as dist
from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from minicluster.core import metrics as m
from minicluster.exporter.collectors.process import ProcessCollector, ProcessReader
from minicluster.track import tls
from minicluster.track.stats import CollectiveStats, RunInfo, RunStats

# Steps of a tiny model on a Mini take about a millisecond; a large one, seconds.
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BUCKET_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
)  # fmt: skip


def _backend(info: RunInfo) -> str:
    if info.backend:
        return info.backend
    try:
        return str(dist.get_backend()) if dist.is_available() and dist.is_initialized() else "-"
    except (RuntimeError, ValueError):
        return "-"


class TrackCollector(Collector):
    def __init__(self, stats: RunStats, info: RunInfo, collectives: CollectiveStats | None = None):
        self.stats, self.info, self.collectives = stats, info, collectives

    def collect(self) -> Iterator[Metric]:
        s, info = self.stats, self.info

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=value)

        labels = {
            "job_id": info.job_id,
            "world_size": str(info.world_size),
            "backend": _backend(info),
            "device": info.device,
            "model": info.model,
        }
        yield InfoMetricFamily(m.TRAINER_INFO, "The job this rank belongs to.", value=labels)
        yield gauge(m.MODEL_PARAMETERS, "Parameters in the model.", info.parameters)
        yield counter(m.STEPS, "Optimizer steps done by this rank.", s.steps)
        yield counter(m.SAMPLES, "Samples this rank trained on.", s.samples)
        yield gauge(m.EPOCH, "Epoch of the last step (0-based).", s.epoch)
        yield gauge(m.TARGET_STEPS, "Steps the job is to run.", s.target_steps)
        yield gauge(m.PROGRESS, "Steps done over target steps.", s.progress)
        yield gauge(
            m.LAST_STEP_TIMESTAMP, "Unix time the last step finished.", s.last_step_timestamp
        )
        phases = CounterMetricFamily(
            m.PHASE_SECONDS,
            "Seconds per step phase; the phases partition the step (comm: not overlapped).",
            labels=["phase"],
        )
        for name in m.PHASES:
            phases.add_metric([name], s.phase_seconds[name])
        yield phases
        yield counter(m.ALLREDUCE_CALLS, "Gradient bucket all-reduces.", s.comm.calls)
        yield counter(m.ALLREDUCE_BYTES, "Gradient bytes all-reduced.", s.comm.bytes)
        yield counter(m.ALLREDUCE_SECONDS, "Sum of bucket all-reduce latencies.", s.comm.seconds)
        if s.loss is not None:
            # NaN and Inf are published as they are: TrainerLossNotFinite looks for them.
            yield gauge(m.LOSS, "Mean training loss over the last log interval.", s.loss)
        yield gauge(
            m.CHECKPOINT_DURATION, "Seconds the last checkpoint took.", s.checkpoint_seconds
        )
        yield gauge(
            m.LAST_CHECKPOINT_STEP, "Step a restart would resume from.", s.last_checkpoint_step
        )
        yield gauge(
            m.LAST_CHECKPOINT_TIMESTAMP,
            "Unix time of the last checkpoint (training start before the first one).",
            s.last_checkpoint_timestamp,
        )
        yield counter(m.RESTARTS, "Times torchrun restarted this job's workers.", s.restarts)
        yield gauge(m.JOB_FINISHED, "1 once the last step is done, else 0.", int(s.finished))
        yield from self._lifecycle()
        yield from self._collectives()

    def _lifecycle(self) -> Iterator[Metric]:
        s = self.stats
        yield GaugeMetricFamily(
            m.START_TIMESTAMP, "Unix time this rank's program started.", value=s.start_timestamp
        )
        if s.exit_code is not None:
            yield GaugeMetricFamily(
                m.EXIT_CODE, "Exit status of this rank's program (0: success).", value=s.exit_code
            )

    def _collectives(self) -> Iterator[Metric]:
        c = self.collectives
        if c is None:
            return
        calls = CounterMetricFamily(
            m.COLLECTIVE_CALLS, "torch.distributed collectives called.", labels=["op"]
        )
        sent = CounterMetricFamily(
            m.COLLECTIVE_BYTES, "Input bytes of torch.distributed collectives.", labels=["op"]
        )
        seconds = CounterMetricFamily(
            m.COLLECTIVE_SECONDS, "Sum of collective latencies.", labels=["op"]
        )
        for op in sorted(c.calls):
            calls.add_metric([op], c.calls[op])
            sent.add_metric([op], c.bytes[op])
            seconds.add_metric([op], c.seconds.get(op, 0.0))
        yield from (calls, sent, seconds)


class PsutilProcessCollector(Collector):
    """The exporter's psutil `process_*`, guarded: a failed read drops only these series."""

    def __init__(self, process: psutil.Process | None = None):
        self._collector = ProcessCollector(ProcessReader(process))

    def collect(self) -> Iterator[Metric]:
        try:
            families = list(self._collector.collect())
        except psutil.Error:
            return  # the scrape still carries the rank's own metrics
        yield from families


class NullSink:
    """No endpoint: every call is a no-op."""

    target: str | None = None

    def start(self, collector: Collector) -> None:
        pass

    def observe_step(self, seconds: float) -> None:
        pass

    def observe_bucket(self, seconds: float) -> None:
        pass

    def close(self) -> None:
        pass


class PrometheusSink(NullSink):
    """Serves this rank's metrics on address:port (0: any free port) with its own registry,
    over mutual TLS when given the node's files."""

    def __init__(self, address: str, port: int, tls_files: tls.TlsFiles | None = None):
        self.address, self.port, self.tls_files = address, port, tls_files
        self.registry = CollectorRegistry()
        self.step_duration = Histogram(
            m.STEP_DURATION,
            "Wall time of one training step.",
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self.bucket_latency = Histogram(
            m.ALLREDUCE_BUCKET,
            "Latency of one gradient bucket's all-reduce.",
            buckets=BUCKET_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._server = None
        self.observe_step = self.step_duration.observe
        self.observe_bucket = self.bucket_latency.observe

    @property
    def target(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    def start(self, collector: Collector) -> None:
        """Serve; raises OSError when the port is taken (the caller falls back) and
        TlsFileError (a ConfigError) when a TLS file is unusable (never plain instead)."""
        self.registry.register(collector)
        self.registry.register(PsutilProcessCollector())
        if self.tls_files is not None:
            self._server = tls.serve(self.address, self.port, self.registry, self.tls_files)
        else:
            self._server, _ = start_http_server(
                self.port, addr=self.address, registry=self.registry
            )
        self.port = self._server.server_port  # the real one when 0 was asked for

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
