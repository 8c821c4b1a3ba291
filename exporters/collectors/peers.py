"""peers: TCP connect time to every other node's exporter, probed at scrape time.

`minicluster_peer_up{peer}` is 1 when the connection was accepted within the timeout;
`minicluster_peer_rtt_seconds{peer}` is the connect time (one SYN/SYN-ACK round trip plus
the kernels' work), published only for peers that answered. All peers are probed at once
with non-blocking sockets, so a scrape waits at most the timeout, however many peers.
"""

from __future__ import annotations

import errno
import selectors
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import Collector, register


@dataclass(frozen=True)
class Peer:
    name: str
    address: str
    port: int


def _start_connect(peer: Peer) -> socket.socket | None:
    # Addresses in config.yaml are normally IPs, for which this does no DNS lookup.
    family, kind, proto, _, address = socket.getaddrinfo(
        peer.address, peer.port, type=socket.SOCK_STREAM
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setblocking(False)
    result = sock.connect_ex(address)
    if result not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
        sock.close()
        return None
    return sock


def probe_peers(peers: list[Peer], timeout: float) -> dict[str, float | None]:
    """Connect time in seconds per peer name, or None for a peer that did not accept."""
    results: dict[str, float | None] = {peer.name: None for peer in peers}
    if not peers:
        return results  # a one-node cluster: not even a selector to make
    selector = selectors.DefaultSelector()
    deadline = time.perf_counter() + timeout
    try:
        for peer in peers:
            started = time.perf_counter()
            try:
                sock = _start_connect(peer)
            except OSError:
                continue
            if sock is not None:
                selector.register(sock, selectors.EVENT_WRITE, (peer, started))
        while selector.get_map():
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            for key, _ in selector.select(remaining):
                peer, started = key.data
                elapsed = time.perf_counter() - started
                sock = key.fileobj
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    results[peer.name] = elapsed
                selector.unregister(sock)
                sock.close()
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        selector.close()
    return results


@register
class PeersCollector(Collector):
    name = "peers"

    @classmethod
    def from_options(cls, options, source=None) -> PeersCollector:
        if source is None:
            peers, timeout = list(options.peers), options.peer_probe_timeout_seconds
            source = lambda: probe_peers(peers, timeout)  # noqa: E731
        return cls(source)

    def default_source(self):
        return dict  # no configuration, no peers

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "minicluster_peer_up",
            "Whether the peer node's exporter accepted a TCP connection in time.",
            labels=["peer"],
        )
        rtt = GaugeMetricFamily(
            "minicluster_peer_rtt_seconds",
            "TCP connect time to the peer node's exporter.",
            labels=["peer"],
        )
        for peer, seconds in sorted(self.source().items()):
            up.add_metric([peer], 0.0 if seconds is None else 1.0)
            if seconds is not None:
                rtt.add_metric([peer], seconds)
        if up.samples:
            yield up
        if rtt.samples:
            yield rtt
