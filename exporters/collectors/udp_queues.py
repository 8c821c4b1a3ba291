"""udp_queues (Linux): bytes queued in UDP sockets, `node_udp_queues{ip,queue}`.

Sums of the tx_queue and rx_queue columns of /proc/net/udp (ip="v4") and /proc/net/udp6
(ip="v6", absent without IPv6), as node_exporter.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import LINUX_ONLY, Collector, read_optional, register

FILES = {"v4": "/proc/net/udp", "v6": "/proc/net/udp6"}


def parse_udp(text: str) -> tuple[int, int]:
    """-> (tx bytes, rx bytes): column 5 is "tx_queue:rx_queue" in hex."""
    tx = rx = 0
    for line in text.splitlines()[1:]:
        fields = line.split(None, 5)
        if len(fields) < 5:
            continue
        tx_queue, _, rx_queue = fields[4].partition(":")
        tx += int(tx_queue, 16)
        rx += int(rx_queue, 16)
    return tx, rx


def read_udp_queues() -> dict[str, tuple[int, int]]:
    result = {}
    for ip, path in FILES.items():
        text = read_optional(path)
        if text is not None:
            result[ip] = parse_udp(text)
    return result


@register
class UdpQueuesCollector(Collector):
    name = "udp_queues"
    platforms = LINUX_ONLY

    def default_source(self):
        return read_udp_queues

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "node_udp_queues",
            "Number of allocated memory in the kernel for UDP datagrams in bytes.",
            labels=["ip", "queue"],
        )
        for ip, (tx, rx) in sorted(self.source().items()):
            family.add_metric([ip, "tx"], tx)
            family.add_metric([ip, "rx"], rx)
        if family.samples:
            yield family
