"""loadavg: `node_load1`, `node_load5`, `node_load15`."""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import Collector, register
from minicluster.exporter.collectors.families import single


@register
class LoadavgCollector(Collector):
    name = "loadavg"

    def default_source(self):
        return os.getloadavg

    def collect(self) -> Iterator[Metric]:
        one, five, fifteen = self.source()
        yield single(GaugeMetricFamily, "node_load1", "1m load average.", one)
        yield single(GaugeMetricFamily, "node_load5", "5m load average.", five)
        yield single(GaugeMetricFamily, "node_load15", "15m load average.", fifteen)
