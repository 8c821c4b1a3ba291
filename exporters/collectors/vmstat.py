"""vmstat: `node_vmstat_<field>` from Linux's /proc/vmstat (node_exporter's default fields).

Swap and paging traffic as the kernel counts it: pswpin/pswpout (pages swapped in and
out), pgpgin/pgpgout, pgfault/pgmajfault and oom_kill. macOS reports swap traffic
through the meminfo collector (`node_memory_swapped_{in,out}_bytes_total`) instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from prometheus_client.core import Metric, UnknownMetricFamily

from minicluster.exporter.collectors.base import Collector, register
from minicluster.exporter.collectors.families import Singles
from minicluster.exporter.collectors.fieldlayout import FieldLayout
from minicluster.exporter.collectors.heldfiles import read_text

# node_exporter's --collector.vmstat.fields default.
FIELDS = re.compile(r"^(oom_kill|pgpg|pswp|pg.*fault).*")


def _locate(words: Sequence[str]) -> list[tuple[int, int, str]]:
    """Each line is "name number": the wanted names at even positions."""
    return [
        (i, i + 1, words[i])
        for i in range(0, len(words) - 1, 2)
        if FIELDS.match(words[i]) and words[i + 1].isdigit()
    ]


_LAYOUT = FieldLayout(_locate)


def parse_vmstat(text: str) -> dict[str, int]:
    return {name: int(number) for name, number in _LAYOUT.fields(text)}


def read_vmstat() -> dict[str, int]:
    return parse_vmstat(read_text("/proc/vmstat"))


@register
class VmstatCollector(Collector):
    name = "vmstat"
    platforms = frozenset({"linux"})

    def default_source(self):
        return read_vmstat

    def collect(self) -> Iterator[Metric]:
        family = self.families
        for field, value in sorted(self.source().items()):
            yield family(field, value)

    # Untyped, as node_exporter publishes them: the kernel's names, its units.
    families = Singles(
        lambda field: (
            UnknownMetricFamily,
            f"node_vmstat_{field}",
            f"/proc/vmstat information field {field}.",
        )
    )
