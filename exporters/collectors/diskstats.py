"""diskstats: `node_disk_{reads,writes}_completed_total`, bytes and time per disk.

Linux reads /proc/diskstats, macOS IOKit's block storage drivers (both through psutil).
Partitions, loop and ram devices are skipped on Linux, as node_exporter does by default.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psutil
from prometheus_client.core import CounterMetricFamily, Metric

from minicluster.exporter.collectors.base import Collector, register

# node_exporter's default --collector.diskstats.device-exclude.
IGNORED_DEVICES = re.compile(r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$")


@dataclass(frozen=True)
class DiskCounters:
    reads_completed: float
    writes_completed: float
    read_bytes: float
    written_bytes: float
    read_time_seconds: float
    write_time_seconds: float
    io_time_seconds: float | None = None  # Linux only; macOS does not count busy time


def read_disks(counters: Callable[..., dict] = psutil.disk_io_counters) -> dict[str, DiskCounters]:
    disks = {}
    for device, io in (counters(perdisk=True, nowrap=False) or {}).items():
        if IGNORED_DEVICES.match(device):
            continue
        busy = getattr(io, "busy_time", None)
        disks[device] = DiskCounters(
            reads_completed=io.read_count,
            writes_completed=io.write_count,
            read_bytes=io.read_bytes,
            written_bytes=io.write_bytes,
            read_time_seconds=io.read_time / 1000,
            write_time_seconds=io.write_time / 1000,
            io_time_seconds=busy / 1000 if busy is not None else None,
        )
    return disks


METRICS = {
    "reads_completed": "The total number of reads completed successfully.",
    "writes_completed": "The total number of writes completed successfully.",
    "read_bytes": "The total number of bytes read successfully.",
    "written_bytes": "The total number of bytes written successfully.",
    "read_time_seconds": "The total number of seconds spent by all reads.",
    "write_time_seconds": "The total number of seconds spent by all writes.",
    "io_time_seconds": "Total seconds spent doing I/Os.",
}


@register
class DiskstatsCollector(Collector):
    name = "diskstats"

    def default_source(self):
        return read_disks

    def collect(self) -> Iterator[Metric]:
        families = {
            field: CounterMetricFamily(f"node_disk_{field}_total", text, labels=["device"])
            for field, text in METRICS.items()
        }
        for device, counters in sorted(self.source().items()):
            for field, family in families.items():
                value = getattr(counters, field)
                if value is not None:
                    family.add_metric([device], value)
        yield from (family for family in families.values() if family.samples)
