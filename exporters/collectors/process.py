"""process: the exporter's own `process_*` metrics, from psutil so they exist on macOS (on
Linux from the /proc files psutil reads, read directly).

prometheus_client's ProcessCollector reads /proc and yields nothing on a Mac.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import Collector, register
from minicluster.exporter.collectors.families import single
from minicluster.exporter.collectors.heldfiles import read_text


@dataclass(frozen=True)
class ProcessStats:
    cpu_seconds: float
    resident_bytes: float
    virtual_bytes: float
    open_fds: float
    max_fds: float
    start_time: float


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class ProcessReader:
    def __init__(self, process: psutil.Process | None = None):
        # This process on Linux: the files psutil would read, read directly (see _linux).
        self.own_linux = process is None and sys.platform.startswith("linux")
        self.process = process or psutil.Process()
        self._start_time: float | None = None

    def __call__(self) -> ProcessStats:
        if self.own_linux:
            return self._linux()
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

    def _linux(self) -> ProcessStats:
        """psutil's numbers from psutil's files (/proc/self/stat, statm, fd), through the
        held descriptors, without psutil's per-call bookkeeping (a third of this collector's
        time)."""
        if self._start_time is None:  # fixed for the life of the process
            self._start_time = self.process.create_time()
        stat = read_text("/proc/self/stat")
        fields = stat[stat.rindex(")") + 2 :].split()  # from the state, the 3rd field, on
        statm = read_text("/proc/self/statm").split()
        return ProcessStats(
            # As psutil.cpu_times(): utime and stime (fields 14 and 15) over the clock ticks.
            cpu_seconds=int(fields[11]) / CLOCK_TICKS + int(fields[12]) / CLOCK_TICKS,
            resident_bytes=int(statm[1]) * PAGE_SIZE,
            virtual_bytes=int(statm[0]) * PAGE_SIZE,
            open_fds=open_fd_count(),
            max_fds=resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            start_time=self._start_time,
        )


def open_fd_count() -> int:
    """The process's open descriptors: Linux 6.2 and later give the count as the size of
    /proc/PID/fd, without listing it (listing costs 70 us with the descriptors heldfiles
    keeps open); older kernels give 0 there and the directory is listed, as psutil does.
    The listing's own descriptor is not counted."""
    count = os.stat("/proc/self/fd").st_size
    if count > 0:
        return count
    return len(os.listdir("/proc/self/fd")) - 1


@register
class ProcessCollector(Collector):
    name = "process"

    def default_source(self):
        return ProcessReader()

    def collect(self) -> Iterator[Metric]:
        stats = self.source()
        yield single(
            CounterMetricFamily,
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            stats.cpu_seconds,
        )
        yield single(
            GaugeMetricFamily,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            stats.resident_bytes,
        )
        yield single(
            GaugeMetricFamily,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            stats.virtual_bytes,
        )
        yield single(
            GaugeMetricFamily,
            "process_open_fds",
            "Number of open file descriptors.",
            stats.open_fds,
        )
        yield single(
            GaugeMetricFamily,
            "process_max_fds",
            "Maximum number of open file descriptors.",
            stats.max_fds,
        )
        yield single(
            GaugeMetricFamily,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            stats.start_time,
        )
