"""arp (Linux): `node_arp_entries{device}`, the ARP table's entries per interface.

Counted from /proc/net/arp, the source node_exporter reads without netlink.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import LINUX_ONLY, Collector, read_optional, register

PROC_NET_ARP = "/proc/net/arp"


def parse_arp(text: str) -> dict[str, int]:
    """Rows: IP address, HW type, Flags, HW address, Mask, Device (after a header line)."""
    counts: Counter[str] = Counter()
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 6:
            counts[fields[5]] += 1
    return dict(counts)


def read_arp() -> dict[str, int]:
    text = read_optional(PROC_NET_ARP)  # absent on a kernel built without IPv4
    return parse_arp(text) if text is not None else {}


@register
class ArpCollector(Collector):
    name = "arp"
    platforms = LINUX_ONLY

    def default_source(self):
        return read_arp

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("node_arp_entries", "ARP entries by device", labels=["device"])
        for device, count in sorted(self.source().items()):
            family.add_metric([device], count)
        if family.samples:
            yield family
