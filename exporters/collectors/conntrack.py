"""conntrack (Linux): the netfilter connection table's fill and its per-CPU statistics.

`node_nf_conntrack_entries`, `node_nf_conntrack_entries_limit` from
/proc/sys/net/netfilter, and `node_nf_conntrack_stat_<field>` summed over CPUs from
/proc/net/stat/nf_conntrack; gauges, as node_exporter. Without the nf_conntrack module
none of these files exist: no series, and the collector succeeds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import LINUX_ONLY, Collector, read_optional, register
from minicluster.exporter.collectors.families import single

COUNT = "/proc/sys/net/netfilter/nf_conntrack_count"
MAX = "/proc/sys/net/netfilter/nf_conntrack_max"
STAT = "/proc/net/stat/nf_conntrack"
STATS = {
    "found": "Number of searched entries which were successful.",
    "invalid": "Number of packets seen which can not be tracked.",
    "ignore": "Number of packets seen which are already connected to a conntrack entry.",
    "insert": "Number of entries inserted into the list.",
    "insert_failed": "Number of entries for which list insertion was attempted but failed.",
    "drop": "Number of packets dropped due to conntrack failure.",
    "early_drop": "Number of dropped conntrack entries to make room for new ones, if maximum "
    "table size was reached.",
    "search_restart": "Number of conntrack table lookups which had to be restarted due to "
    "hashtable resizes.",
}


@dataclass(frozen=True)
class Conntrack:
    entries: float
    limit: float
    stats: dict[str, float] = field(default_factory=dict)


def parse_stat(text: str) -> dict[str, float]:
    """A header of field names, then one line of hex counters per CPU; summed per field."""
    lines = text.split("\n")
    names = lines[0].split()
    totals = dict.fromkeys(names, 0.0)
    for line in lines[1:]:
        for name, number in zip(names, line.split(), strict=False):
            totals[name] += int(number, 16)
    return {name: totals[name] for name in STATS if name in totals}


def read_conntrack() -> Conntrack | None:
    count = read_optional(COUNT)
    if count is None:
        return None
    limit = read_optional(MAX)
    stat = read_optional(STAT)
    return Conntrack(
        entries=float(count),
        limit=float(limit) if limit is not None else float("nan"),
        stats=parse_stat(stat) if stat else {},
    )


@register
class ConntrackCollector(Collector):
    name = "conntrack"
    platforms = LINUX_ONLY

    def default_source(self):
        return read_conntrack

    def collect(self) -> Iterator[Metric]:
        table = self.source()
        if table is None:
            return
        yield single(
            GaugeMetricFamily,
            "node_nf_conntrack_entries",
            "Number of currently allocated flow entries for connection tracking.",
            table.entries,
        )
        yield single(
            GaugeMetricFamily,
            "node_nf_conntrack_entries_limit",
            "Maximum size of connection tracking table.",
            table.limit,
        )
        for name, value in table.stats.items():
            yield single(GaugeMetricFamily, f"node_nf_conntrack_stat_{name}", STATS[name], value)
