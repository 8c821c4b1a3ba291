"""filefd (Linux): `node_filefd_allocated` and `node_filefd_maximum` from /proc/sys/fs/file-nr."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import LINUX_ONLY, Collector, register
from minicluster.exporter.collectors.families import single
from minicluster.exporter.collectors.heldfiles import read_text

FILE_NR = "/proc/sys/fs/file-nr"


def parse_file_nr(text: str) -> tuple[float, float]:
    """ "allocated  unused  maximum" -> (allocated, maximum)."""
    allocated, _unused, maximum = text.split()
    return float(allocated), float(maximum)


def read_file_nr() -> tuple[float, float]:
    return parse_file_nr(read_text(FILE_NR))


@register
class FilefdCollector(Collector):
    name = "filefd"
    platforms = LINUX_ONLY

    def default_source(self):
        return read_file_nr

    def collect(self) -> Iterator[Metric]:
        allocated, maximum = self.source()
        yield single(
            GaugeMetricFamily,
            "node_filefd_allocated",
            "File descriptor statistics: allocated.",
            allocated,
        )
        yield single(
            GaugeMetricFamily,
            "node_filefd_maximum",
            "File descriptor statistics: maximum.",
            maximum,
        )
