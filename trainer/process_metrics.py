"""`process_*` metrics from psutil, so they exist on macOS.

prometheus_client's ProcessCollector reads /proc, which macOS does not have: there it
yields nothing. This collector publishes the same names from psutil, read at scrape time.
The process is injected so tests can pass a fake.
"""

from __future__ import annotations

import resource
from collections.abc import Iterator

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class PsutilProcessCollector(Collector):
    def __init__(self, process: psutil.Process | None = None):
        self.process = process or psutil.Process()

    def collect(self) -> Iterator[Metric]:
        try:
            with self.process.oneshot():
                cpu = self.process.cpu_times()
                memory = self.process.memory_info()
                started = self.process.create_time()
                open_fds = self.process.num_fds()
        except psutil.Error:
            return  # the scrape still carries the trainer's own metrics
        yield CounterMetricFamily(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            value=cpu.user + cpu.system,
        )
        yield GaugeMetricFamily(
            "process_resident_memory_bytes", "Resident memory size in bytes.", value=memory.rss
        )
        yield GaugeMetricFamily(
            "process_virtual_memory_bytes", "Virtual memory size in bytes.", value=memory.vms
        )
        yield GaugeMetricFamily(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            value=started,
        )
        yield GaugeMetricFamily(
            "process_open_fds", "Number of open file descriptors.", value=open_fds
        )
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft_limit != resource.RLIM_INFINITY:
            yield GaugeMetricFamily(
                "process_max_fds", "Maximum number of open file descriptors.", value=soft_limit
            )
