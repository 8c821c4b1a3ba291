"""memory_pressure (macOS): `minicluster_memory_pressure_level`, 1 normal, 2 warn, 4 critical.

The kernel's own verdict (`kern.memorystatus_vm_pressure_level`, readable without root);
no other exporter publishes it. It is what Activity Monitor's memory-pressure graph shows.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter import macos
from minicluster.exporter.collectors.base import DARWIN_ONLY, Collector, register

SYSCTL = "kern.memorystatus_vm_pressure_level"
LEVELS = {1: "normal", 2: "warn", 4: "critical"}


def read_pressure_level() -> int:
    return macos.sysctl_int(SYSCTL)


@register
class MemoryPressureCollector(Collector):
    name = "memory_pressure"
    platforms = DARWIN_ONLY

    def default_source(self):
        return read_pressure_level

    def collect(self) -> Iterator[Metric]:
        level = self.source()
        if level not in LEVELS:
            raise ValueError(f"{SYSCTL} is {level}, expected one of 1, 2, 4")
        yield GaugeMetricFamily(
            "minicluster_memory_pressure_level",
            "macOS memory pressure: 1 normal, 2 warn, 4 critical.",
            value=level,
        )
