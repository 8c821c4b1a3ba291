"""Live: two network namespaces joined by a veth pair, an exporter in each.

A known number of bytes goes from one namespace to the other over TCP; each exporter's
byte counter for its end of the veth must grow by at least that and by at most 5% more
(TCP/IP and Ethernet headers, the handshake; IPv6 is off so no autoconfiguration chatter).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.exporter.conftest import samples
from tests.support import require_tool

PAYLOAD_BYTES = 16 * 1024 * 1024
MTU = 9000  # jumbo frames, as a Thunderbolt bridge: headers are under 1% of each frame

FETCH = """
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode(), end="")
"""
RECEIVE = """
import socket, sys
server = socket.create_server((sys.argv[1], 0))
print(server.getsockname()[1], flush=True)
connection, _ = server.accept()
total = 0
while chunk := connection.recv(1 << 20):
    total += len(chunk)
print(total, flush=True)
"""
SEND = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30) as sock:
    sock.sendall(b"\\0" * int(sys.argv[3]))
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def in_ns(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


@pytest.fixture
def veth_pair():
    """(namespace, device, address) for both ends; everything is deleted afterwards."""
    require_tool("ip", "apt-get install iproute2")
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root: run the tests as root (CI does)")
    pid = os.getpid()
    subnet = f"10.199.{pid % 250}"
    ends = [
        (f"mcx-{pid}-a", f"mcx{pid}a", f"{subnet}.1"),
        (f"mcx-{pid}-b", f"mcx{pid}b", f"{subnet}.2"),
    ]
    created: list[str] = []
    try:
        for ns, _, _ in ends:
            ip("netns", "add", ns)
            created.append(ns)
            # Set before the veth arrives, so it comes up without IPv6 (no DAD, no RS).
            for key in ["all", "default"]:
                ip("netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1")
            ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        dev_a, dev_b = ends[0][1], ends[1][1]
        ip("link", "add", dev_a, "type", "veth", "peer", "name", dev_b)
        for ns, dev, address in ends:
            ip("link", "set", dev, "netns", ns)
            ip("netns", "exec", ns, "ip", "addr", "add", f"{address}/30", "dev", dev)
            ip("netns", "exec", ns, "ip", "link", "set", dev, "mtu", str(MTU), "up")
        yield ends
    finally:
        for ns in created:  # deleting a namespace deletes its end of the veth, and the pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


class NamespacedExporter:
    def __init__(self, ns: str):
        self.ns = ns
        self.process = subprocess.Popen(
            in_ns(ns, sys.executable, "-m", "minicluster.exporter", "--listen", "127.0.0.1:0"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline()  # printed once it listens
        if "listening on" not in line:
            self.process.kill()
            pytest.fail(f"exporter in {ns} did not start: {line}{self.process.stderr.read()}")
        self.url = line.rsplit(" ", 1)[1].strip() + "/metrics"

    def scrape(self) -> dict:
        result = subprocess.run(
            in_ns(self.ns, sys.executable, "-I", "-c", FETCH, self.url),
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return samples(result.stdout)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def counter(parsed: dict, direction: str, device: str) -> float:
    return parsed[(f"node_network_{direction}_bytes_total", frozenset({("device", device)}))]


@pytest.mark.e2e
def test_veth_byte_counters_match_the_bytes_sent(veth_pair):
    (ns_a, dev_a, _), (ns_b, dev_b, address_b) = veth_pair
    exporters = [NamespacedExporter(ns_a), NamespacedExporter(ns_b)]
    try:
        before_a, before_b = (exporter.scrape() for exporter in exporters)
        # Each exporter sees only its own namespace's interfaces.
        assert ("node_network_up", frozenset({("device", dev_a)})) in before_a
        assert ("node_network_up", frozenset({("device", dev_b)})) not in before_a
        assert before_a[("node_network_mtu_bytes", frozenset({("device", dev_a)}))] == MTU
        kind = frozenset({("device", dev_a), ("kind", "other")})
        assert before_a[("minicluster_network_link_info", kind)] == 1

        receiver = subprocess.Popen(
            in_ns(ns_b, sys.executable, "-I", "-c", RECEIVE, address_b),
            stdout=subprocess.PIPE,
            text=True,
        )
        port = receiver.stdout.readline().strip()
        subprocess.run(
            in_ns(ns_a, sys.executable, "-I", "-c", SEND, address_b, port, str(PAYLOAD_BYTES)),
            check=True,
            timeout=60,
        )
        received = int(receiver.stdout.readline())
        receiver.wait(10)
        assert received == PAYLOAD_BYTES

        after_a, after_b = (exporter.scrape() for exporter in exporters)
    finally:
        for exporter in exporters:
            exporter.stop()

    sent = counter(after_a, "transmit", dev_a) - counter(before_a, "transmit", dev_a)
    got = counter(after_b, "receive", dev_b) - counter(before_b, "receive", dev_b)
    for growth in (sent, got):
        assert PAYLOAD_BYTES <= growth <= PAYLOAD_BYTES * 1.05, (growth, PAYLOAD_BYTES)


@pytest.mark.e2e
def test_link_changes_show_at_the_next_scrape(veth_pair):
    """netclass serves its last read until the kernel announces a link change: each change
    here must show at the very next scrape, well inside the backstop's minute."""
    (ns_a, dev_a, _), _ = veth_pair
    exporter = NamespacedExporter(ns_a)
    device = frozenset({("device", dev_a)})
    try:
        assert exporter.scrape()[("node_network_mtu_bytes", device)] == MTU
        assert exporter.scrape()[("node_network_mtu_bytes", device)] == MTU  # served again
        ip("netns", "exec", ns_a, "ip", "link", "set", dev_a, "mtu", "1400")
        assert exporter.scrape()[("node_network_mtu_bytes", device)] == 1400
        ip("netns", "exec", ns_a, "ip", "link", "set", dev_a, "alias", "training link")
        info = [
            dict(labels)
            for (name, labels), _ in exporter.scrape().items()
            if name == "node_network_info" and ("device", dev_a) in labels
        ]
        assert [entry["ifalias"] for entry in info] == ["training link"]
        ip("netns", "exec", ns_a, "ip", "link", "set", dev_a, "down")
        after = exporter.scrape()
        assert after[("node_network_up", device)] == 0
        assert after[("node_network_carrier_changes_total", device)] >= 1
    finally:
        exporter.stop()
