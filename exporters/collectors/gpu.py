"""gpu (macOS): `minicluster_gpu_utilization_ratio{gpu}` from IOAccelerator's statistics.

`ioreg -r -d 1 -w 0 -c IOAccelerator` lists each GPU with a `PerformanceStatistics`
dictionary whose "Device Utilization %" is what Activity Monitor's GPU history shows;
it needs no root (power does: powermetrics). `gpu` is the accelerator's position.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter import macos
from minicluster.exporter.collectors.base import DARWIN_ONLY, Collector, register

_ENTRY = re.compile(r"^\+-o ", re.MULTILINE)
_STATISTICS = re.compile(r'^\s*"PerformanceStatistics" = \{(.*)\}\s*$', re.MULTILINE)
_UTILIZATION = re.compile(r'"Device Utilization %"=(\d+)')


def parse_accelerators(text: str) -> list[float]:
    """Device utilisation (0..1) of each accelerator that reports statistics."""
    ratios = []
    for entry in _ENTRY.split(text)[1:]:
        statistics = _STATISTICS.search(entry)
        if not statistics:
            continue
        utilization = _UTILIZATION.search(statistics.group(1))
        if utilization:
            ratios.append(int(utilization.group(1)) / 100)
    return ratios


def read_gpus() -> list[float]:
    return parse_accelerators(macos.ioreg_accelerators())


@register
class GpuCollector(Collector):
    name = "gpu"
    platforms = DARWIN_ONLY

    def default_source(self):
        return read_gpus

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "minicluster_gpu_utilization_ratio",
            "GPU busy ratio (IOAccelerator PerformanceStatistics Device Utilization %).",
            labels=["gpu"],
        )
        for index, ratio in enumerate(self.source()):
            family.add_metric([str(index)], ratio)
        yield family
