"""What a rank knows about itself, and where it goes: nowhere, or a Prometheus endpoint.

The training loop updates `RunStats` (plain host numbers: no Prometheus call, lock or
device sync per step except two histogram observations). The loss stays on the device
in `LossMeter` and is read once per log step. `PrometheusSink` serves the stats through a
collector that reads them at scrape time (client_python's custom-collector pattern), plus
psutil's `process_*`. `NullSink` is the same interface doing nothing (`--no-metrics`).
Job, rank and node labels come from the `/sd` target labels, not from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from minicluster.core.metrics import PHASES
from minicluster.trainer.comm_hook import CommStats
from minicluster.trainer.process_metrics import PsutilProcessCollector

# Steps of a tiny model on a Mini take about a millisecond; a large one, seconds.
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BUCKET_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
)  # fmt: skip


@dataclass(frozen=True)
class RunInfo:
    job_id: str
    world_size: int
    backend: str
    device: str
    model: str
    parameters: int


@dataclass
class RunStats:
    """One rank's running totals. Counters survive restarts through checkpoints."""

    target_steps: int
    restarts: int = 0
    steps: int = 0
    samples: int = 0
    epoch: int = 0
    wall_seconds: float = 0.0
    last_step_timestamp: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    comm: CommStats = field(default_factory=CommStats)
    loss: float | None = None  # mean over the last log interval
    checkpoint_seconds: float = 0.0
    # The step and time a restart would resume from: the last checkpoint, or the start
    # of training before there is one (so "time since" measures the work at risk).
    last_checkpoint_step: int = 0
    last_checkpoint_timestamp: float = 0.0
    finished: bool = False

    @property
    def progress(self) -> float:
        return min(self.steps / self.target_steps, 1.0)

    def counters(self) -> dict[str, float]:
        """The cumulative values a checkpoint stores so a restart does not count twice."""
        values = {
            "steps": self.steps,
            "samples": self.samples,
            "wall_seconds": self.wall_seconds,
            "allreduce_calls": self.comm.calls,
            "allreduce_bytes": self.comm.bytes,
            "allreduce_seconds": self.comm.seconds,
        }
        values.update({f"phase_{name}": seconds for name, seconds in self.phase_seconds.items()})
        return values

    def restore(self, values: dict[str, float]) -> None:
        self.steps = int(values["steps"])
        self.samples = int(values["samples"])
        self.wall_seconds = float(values["wall_seconds"])
        self.comm.calls = int(values["allreduce_calls"])
        self.comm.bytes = int(values["allreduce_bytes"])
        self.comm.seconds = float(values["allreduce_seconds"])
        for name in PHASES:
            self.phase_seconds[name] = float(values[f"phase_{name}"])


class LossMeter:
    """Sums losses on the device; `.mean()` is the one host sync, done at log steps."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.count = 0

    def add(self, loss: torch.Tensor) -> None:
        detached = loss.detach()
        self.total = detached.clone() if self.total is None else self.total.add_(detached)
        self.count += 1

    def mean(self) -> float | None:
        if self.total is None:
            return None
        value = self.total.item() / self.count
        self.total, self.count = None, 0
        return value


class NullSink:
    """Metrics off: every hook is a no-op."""

    target: str | None = None

    def start(self, stats: RunStats, info: RunInfo) -> None:
        pass

    def observe_step(self, seconds: float) -> None:
        pass

    def observe_bucket(self, seconds: float) -> None:
        pass

    def close(self) -> None:
        pass


class TrainerCollector(Collector):
    def __init__(self, stats: RunStats, info: RunInfo):
        self.stats, self.info = stats, info

    def collect(self) -> Iterator[Metric]:
        s, info = self.stats, self.info

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=value)

        labels = {
            "job_id": info.job_id,
            "world_size": str(info.world_size),
            "backend": info.backend,
            "device": info.device,
            "model": info.model,
        }
        yield InfoMetricFamily("trainer", "The job this rank belongs to.", value=labels)
        yield gauge("trainer_model_parameters", "Parameters in the model.", info.parameters)
        yield counter("trainer_steps_total", "Optimizer steps done by this rank.", s.steps)
        yield counter("trainer_samples_total", "Samples this rank trained on.", s.samples)
        yield gauge("trainer_epoch", "Epoch of the last step (0-based).", s.epoch)
        yield gauge("trainer_target_steps", "Steps the job is to run.", s.target_steps)
        yield gauge("trainer_progress_ratio", "Steps done over target steps.", s.progress)
        yield gauge(
            "trainer_last_step_timestamp_seconds",
            "Unix time the last step finished.",
            s.last_step_timestamp,
        )
        phases = CounterMetricFamily(
            "trainer_phase_seconds_total",
            "Seconds per step phase; the phases partition the step (comm: not overlapped).",
            labels=["phase"],
        )
        for name in PHASES:
            phases.add_metric([name], s.phase_seconds[name])
        yield phases
        yield counter("trainer_allreduce_calls_total", "Gradient bucket all-reduces.", s.comm.calls)
        yield counter("trainer_allreduce_bytes_total", "Gradient bytes all-reduced.", s.comm.bytes)
        yield counter(
            "trainer_allreduce_seconds_total",
            "Sum of bucket all-reduce latencies.",
            s.comm.seconds,
        )
        if s.loss is not None:
            # NaN and Inf are published as they are: TrainerLossNotFinite looks for them.
            yield gauge("trainer_loss", "Mean training loss over the last log interval.", s.loss)
        yield gauge(
            "trainer_checkpoint_duration_seconds",
            "Seconds the last checkpoint took.",
            s.checkpoint_seconds,
        )
        yield gauge(
            "trainer_last_checkpoint_step",
            "Step a restart would resume from.",
            s.last_checkpoint_step,
        )
        yield gauge(
            "trainer_last_checkpoint_timestamp_seconds",
            "Unix time of the last checkpoint (training start before the first one).",
            s.last_checkpoint_timestamp,
        )
        yield counter(
            "trainer_restarts_total", "Times torchrun restarted this job's workers.", s.restarts
        )
        yield gauge(
            "trainer_job_finished", "1 once the last step is done, else 0.", int(s.finished)
        )


class PrometheusSink(NullSink):
    """Serves this rank's metrics on address:port with a private registry."""

    def __init__(self, address: str, port: int):
        self.address, self.port = address, port
        self.registry = CollectorRegistry()
        self.step_duration = Histogram(
            "trainer_step_duration_seconds",
            "Wall time of one training step.",
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self.bucket_latency = Histogram(
            "trainer_allreduce_bucket_seconds",
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

    def start(self, stats: RunStats, info: RunInfo) -> None:
        self.registry.register(TrainerCollector(stats, info))
        self.registry.register(PsutilProcessCollector())
        self._server, _ = start_http_server(self.port, addr=self.address, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
