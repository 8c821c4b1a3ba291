"""time: `node_time_seconds`, the node's clock.

macOS has no timex: clock-offset alerts compare this with the scrape time
(`timestamp(node_time_seconds) - node_time_seconds`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import Collector, register


@register
class TimeCollector(Collector):
    name = "time"

    def default_source(self):
        return time.time

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "node_time_seconds", "System time in seconds since epoch (1970).", value=self.source()
        )
