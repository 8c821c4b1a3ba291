"""sockstat (Linux): sockets in use per protocol, from /proc/net/sockstat and sockstat6.

`node_sockstat_sockets_used`, `node_sockstat_<PROTO>_<field>` (TCP_inuse, TCP_tw,
UDP_mem, FRAG6_inuse, ...) and, for the `mem` fields counted in pages,
`node_sockstat_<PROTO>_mem_bytes`; gauges, as node_exporter.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import LINUX_ONLY, Collector, read_optional, register
from minicluster.exporter.collectors.families import single

FILES = ("/proc/net/sockstat", "/proc/net/sockstat6")


def parse_sockstat(text: str, page_size: int) -> dict[tuple[str, str], float]:
    """ "TCP: inuse 3 orphan 0 tw 0 alloc 4 mem 1" -> {("TCP", "inuse"): 3, ...}."""
    values = {}
    for line in text.splitlines():
        protocol, _, rest = line.partition(":")
        fields = rest.split()
        for name, number in zip(fields[::2], fields[1::2], strict=False):
            values[(protocol, name)] = float(number)
            if name == "mem":  # the kernel counts socket memory in pages
                values[(protocol, "mem_bytes")] = float(number) * page_size
    return values


def read_sockstat(page_size: int | None = None) -> dict[tuple[str, str], float]:
    page_size = page_size or os.sysconf("SC_PAGE_SIZE")
    values: dict[tuple[str, str], float] = {}
    for path in FILES:
        text = read_optional(path)  # sockstat6 is absent without IPv6
        if text is not None:
            values.update(parse_sockstat(text, page_size))
    return values


@register
class SockstatCollector(Collector):
    name = "sockstat"
    platforms = LINUX_ONLY

    def default_source(self):
        return read_sockstat

    def collect(self) -> Iterator[Metric]:
        for (protocol, field), value in sorted(self.source().items()):
            if protocol == "sockets" and field == "used":
                yield single(
                    GaugeMetricFamily,
                    "node_sockstat_sockets_used",
                    "Number of IPv4 sockets in use.",
                    value,
                )
                continue
            yield single(
                GaugeMetricFamily,
                f"node_sockstat_{protocol}_{field}",
                f"Number of {protocol} sockets in state {field}.",
                value,
            )
