"""process: the exporter's own `process_*` metrics, from psutil so they exist on macOS.

prometheus_client's ProcessCollector reads /proc and yields nothing on a Mac.
"""

from __future__ import annotations

import resource
from collections.abc import Iterator
from dataclasses import dataclass

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import Collector, register


@dataclass(frozen=True)
class ProcessStats:
    cpu_seconds: float
    resident_bytes: float
    virtual_bytes: float
    open_fds: float
    max_fds: float
    start_time: float


class ProcessReader:
    def __init__(self, process: psutil.Process | None = None):
        self.process = process or psutil.Process()

    def __call__(self) -> ProcessStats:
        proc = self.process
        with proc.oneshot():
            cpu = proc.cpu_times()
            memory = proc.memory_info()
            fds = proc.num_fds()
            started = proc.create_time()
        return ProcessStats(
            cpu_seconds=cpu.user + cpu.system,
            resident_bytes=memory.rss,
            virtual_bytes=memory.vms,
            open_fds=fds,
            max_fds=resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            start_time=started,
        )


@register
class ProcessCollector(Collector):
    name = "process"

    def default_source(self):
        return ProcessReader()

    def collect(self) -> Iterator[Metric]:
        stats = self.source()
        yield CounterMetricFamily(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            value=stats.cpu_seconds,
        )
        yield GaugeMetricFamily(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            value=stats.resident_bytes,
        )
        yield GaugeMetricFamily(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            value=stats.virtual_bytes,
        )
        yield GaugeMetricFamily(
            "process_open_fds", "Number of open file descriptors.", value=stats.open_fds
        )
        yield GaugeMetricFamily(
            "process_max_fds", "Maximum number of open file descriptors.", value=stats.max_fds
        )
        yield GaugeMetricFamily(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            value=stats.start_time,
        )
