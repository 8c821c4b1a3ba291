"""The collector's names and values, psutil's process_*, the served endpoint.

The trainer publishes through minicluster.track, so these are track's publishing parts.
"""

from __future__ import annotations

import contextlib
import math
from collections import namedtuple

import psutil
import pytest
import requests
import torch
from prometheus_client import CollectorRegistry

from minicluster.track.publish import (
    NullSink,
    PrometheusSink,
    PsutilProcessCollector,
    TrackCollector,
)
from minicluster.track.stats import LossMeter, RunInfo, RunStats
from tests.support import free_port

INFO = RunInfo(
    job_id="j7", world_size=4, backend="gloo", device="mps", model="transformer", parameters=1234
)


def filled_stats() -> RunStats:
    stats = RunStats(target_steps=50, restarts=2)
    stats.steps, stats.samples, stats.epoch = 20, 640, 1
    stats.last_step_timestamp = 1_700_000_000.5
    stats.phase_seconds.update(data=0.1, forward=1.5, backward=3.0, comm=0.7, optimizer=0.2)
    stats.phase_seconds["staging"] = 0.4
    stats.comm.calls, stats.comm.bytes, stats.comm.seconds = 40, 2_000_000, 0.7
    stats.loss = 0.625
    stats.checkpoint_seconds, stats.last_checkpoint_step = 0.25, 20
    stats.last_checkpoint_timestamp = 1_700_000_001.0
    return stats


def read(collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def test_collector_publishes_every_trainer_metric_from_the_stats():
    stats = filled_stats()
    r = read(TrackCollector(stats, INFO))
    labels = dict(job_id="j7", world_size="4", backend="gloo", device="mps", model="transformer")
    assert r.get_sample_value("trainer_info", labels) == 1
    expected = {
        "trainer_model_parameters": 1234,
        "trainer_steps_total": 20,
        "trainer_samples_total": 640,
        "trainer_epoch": 1,
        "trainer_target_steps": 50,
        "trainer_progress_ratio": 0.4,
        "trainer_last_step_timestamp_seconds": 1_700_000_000.5,
        "trainer_allreduce_calls_total": 40,
        "trainer_allreduce_bytes_total": 2_000_000,
        "trainer_allreduce_seconds_total": 0.7,
        "trainer_loss": 0.625,
        "trainer_checkpoint_duration_seconds": 0.25,
        "trainer_last_checkpoint_step": 20,
        "trainer_last_checkpoint_timestamp_seconds": 1_700_000_001.0,
        "trainer_restarts_total": 2,
        "trainer_job_finished": 0,
    }
    for name, value in expected.items():
        assert r.get_sample_value(name) == value, name
    for phase, seconds in stats.phase_seconds.items():
        assert r.get_sample_value("trainer_phase_seconds_total", {"phase": phase}) == seconds
    # Read at scrape time: the next scrape sees the loop's updates, no gauge was set.
    stats.steps, stats.finished = 50, True
    assert r.get_sample_value("trainer_progress_ratio") == 1
    assert r.get_sample_value("trainer_job_finished") == 1


def test_no_loss_series_before_the_first_log_step_and_non_finite_losses_published():
    stats = RunStats(target_steps=5)
    r = read(TrackCollector(stats, INFO))
    assert r.get_sample_value("trainer_loss") is None
    # A diverged loss must reach Prometheus as it is, for TrainerLossNotFinite.
    stats.loss = math.nan
    assert math.isnan(r.get_sample_value("trainer_loss"))
    stats.loss = math.inf
    assert r.get_sample_value("trainer_loss") == math.inf


def test_counters_round_trip_through_a_checkpoint():
    stats = filled_stats()
    restored = RunStats(target_steps=50)
    restored.restore(stats.counters())
    assert restored.counters() == stats.counters()
    assert (restored.steps, restored.comm.bytes, restored.phase_seconds["staging"]) == (
        20, 2_000_000, 0.4,
    )  # fmt: skip


def test_loss_meter_averages_on_the_device_until_asked():
    meter = LossMeter()
    assert meter.mean() is None
    first = torch.tensor(2.0, requires_grad=True) * 1
    meter.add(first)
    meter.add(torch.tensor(4.0))
    assert isinstance(meter.total, torch.Tensor) and not meter.total.requires_grad
    assert meter.mean() == 3.0
    assert meter.mean() is None  # reset after each log step
    assert first.item() == 2.0  # the caller's loss was not modified in place


CpuTimes = namedtuple("CpuTimes", "user system")
MemInfo = namedtuple("MemInfo", "rss vms")


class FakeProcess:
    """What psutil.Process reports on a Mac (no /proc involved)."""

    def __init__(self, fail: bool = False):
        self.fail = fail

    def oneshot(self):
        return contextlib.nullcontext()

    def cpu_times(self):
        if self.fail:
            raise psutil.AccessDenied(pid=1)
        return CpuTimes(user=12.5, system=2.5)

    def memory_info(self):
        return MemInfo(rss=300_000_000, vms=400_000_000_000)

    def create_time(self):
        return 1_700_000_000.0

    def num_fds(self):
        return 42


def test_process_metrics_come_from_psutil():
    r = read(PsutilProcessCollector(FakeProcess()))
    assert r.get_sample_value("process_cpu_seconds_total") == 15.0
    assert r.get_sample_value("process_resident_memory_bytes") == 300_000_000
    assert r.get_sample_value("process_virtual_memory_bytes") == 400_000_000_000
    assert r.get_sample_value("process_start_time_seconds") == 1_700_000_000.0
    assert r.get_sample_value("process_open_fds") == 42
    assert r.get_sample_value("process_max_fds") > 0


def test_a_failing_process_read_drops_only_the_process_metrics():
    registry = read(PsutilProcessCollector(FakeProcess(fail=True)))
    registry.register(TrackCollector(RunStats(target_steps=3), INFO))
    assert registry.get_sample_value("process_open_fds") is None
    assert registry.get_sample_value("trainer_target_steps") == 3


def test_sink_serves_on_its_address_and_port_and_stops_on_close():
    port = free_port()
    sink = PrometheusSink("127.0.0.1", port)
    assert sink.target == f"127.0.0.1:{port}"
    stats = RunStats(target_steps=10)
    sink.start(TrackCollector(stats, INFO))
    try:
        sink.observe_step(0.003)
        sink.observe_bucket(0.0004)
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        sink.close()
    assert 'trainer_step_duration_seconds_bucket{le="0.005"} 1.0' in text
    assert 'trainer_step_duration_seconds_bucket{le="0.0025"} 0.0' in text
    assert 'trainer_allreduce_bucket_seconds_bucket{le="0.0005"} 1.0' in text
    assert "trainer_target_steps 10.0" in text
    assert "process_resident_memory_bytes" in text
    # prometheus_client's own /proc-based process and platform collectors are not there.
    assert "python_info" not in text and text.count("# TYPE process_cpu_seconds_total") == 1
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_null_sink_offers_what_the_loop_calls_and_does_nothing():
    sink = NullSink()
    sink.start(TrackCollector(RunStats(target_steps=1), INFO))
    sink.observe_step(1.0)
    sink.observe_bucket(1.0)
    sink.close()
    assert sink.target is None
    public = {name for name in dir(PrometheusSink) if not name.startswith("_")}
    assert {"start", "observe_step", "observe_bucket", "close", "target"} <= public
