"""boottime: `node_boot_time_seconds` (btime in /proc/stat, kern.boottime on macOS)."""

from __future__ import annotations

from collections.abc import Iterator

import psutil
from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import Collector, register


@register
class BoottimeCollector(Collector):
    name = "boottime"

    def default_source(self):
        return psutil.boot_time

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "node_boot_time_seconds", "Node boot time, in unixtime.", value=self.source()
        )
