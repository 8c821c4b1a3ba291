"""entropy (Linux): `node_entropy_available_bits`, `node_entropy_pool_size_bits`."""

from __future__ import annotations

import functools
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import LINUX_ONLY, Collector, register
from minicluster.exporter.collectors.families import single
from minicluster.exporter.collectors.heldfiles import read_text

RANDOM = "/proc/sys/kernel/random"


def read_entropy(root: str = RANDOM) -> tuple[float, float]:
    available = float(read_text(f"{root}/entropy_avail"))
    return available, _pool_size(root)


@functools.cache
def _pool_size(root: str) -> float:
    # A constant of the kernel (4096 bits before 5.18, 256 since): read once.
    with open(f"{root}/poolsize") as f:
        return float(f.read())


@register
class EntropyCollector(Collector):
    name = "entropy"
    platforms = LINUX_ONLY

    def default_source(self):
        return read_entropy

    def collect(self) -> Iterator[Metric]:
        available, pool = self.source()
        yield single(
            GaugeMetricFamily,
            "node_entropy_available_bits",
            "Bits of available entropy.",
            available,
        )
        yield single(
            GaugeMetricFamily, "node_entropy_pool_size_bits", "Bits of entropy pool.", pool
        )
