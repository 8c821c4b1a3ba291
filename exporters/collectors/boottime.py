"""boottime: `node_boot_time_seconds` (btime in /proc/stat, kern.boottime on macOS).

On Linux btime comes from the /proc/stat the cpu and stat collectors read in the same scrape.
"""

from __future__ import annotations

from collections.abc import Iterator

import psutil
from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import Collector, for_platform, read_once, register
from minicluster.exporter.collectors.families import single


def parse_btime(text: str) -> float:
    for line in text.splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise ValueError("/proc/stat has no btime line")


def read_linux() -> float:
    return parse_btime(read_once("/proc/stat"))


@register
class BoottimeCollector(Collector):
    name = "boottime"

    def default_source(self):
        return for_platform(linux=read_linux, darwin=psutil.boot_time)

    def collect(self) -> Iterator[Metric]:
        yield single(
            GaugeMetricFamily,
            "node_boot_time_seconds",
            "Node boot time, in unixtime.",
            self.source(),
        )
