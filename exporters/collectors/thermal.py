"""thermal (macOS): `minicluster_thermal_state`, the system's thermal pressure level.

0 nominal, 1 moderate, 2 heavy, 3 trapping, 4 sleeping: OSThermalPressureLevel from the
`com.apple.system.thermalpressurelevel` notification, readable without root (temperatures
and power need powermetrics, which needs root). Anything above 0 means the Mini throttles.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter import macos
from minicluster.exporter.collectors.base import DARWIN_ONLY, Collector, register

STATES = ("nominal", "moderate", "heavy", "trapping", "sleeping")


@register
class ThermalCollector(Collector):
    name = "thermal"
    platforms = DARWIN_ONLY

    def default_source(self):
        return macos.thermal_pressure_level

    def collect(self) -> Iterator[Metric]:
        level = self.source()
        if not 0 <= level < len(STATES):
            raise ValueError(f"thermal pressure level {level} is not one of 0..4")
        yield GaugeMetricFamily(
            "minicluster_thermal_state",
            "macOS thermal pressure: 0 nominal, 1 moderate, 2 heavy, 3 trapping, 4 sleeping.",
            value=level,
        )
