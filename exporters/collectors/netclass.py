"""netclass: link state per interface, and what kind of link it is.

`node_network_up`, `node_network_mtu_bytes`, `node_network_speed_bytes` (where the OS
knows the speed) and `minicluster_network_link_info{device,kind}` with kind ethernet,
wifi, thunderbolt, loopback or other: on a Mac, en0 may be Ethernet or Wi-Fi and the
training link may be the Thunderbolt Bridge, which node_exporter cannot tell apart.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psutil
from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter import macos
from minicluster.exporter.collectors.base import Collector, register

KINDS = ("ethernet", "wifi", "thunderbolt", "loopback", "other")
SYS_CLASS_NET = "/sys/class/net"
ARPHRD_ETHER, ARPHRD_LOOPBACK = "1", "772"
# The hardware-port list changes only when an adapter is plugged in; asking
# networksetup at every scrape would cost a process spawn per scrape.
HARDWARE_PORTS_TTL_SECONDS = 300.0
KIND_TTL_SECONDS = 300.0
MAX_CACHED_KINDS = 1_000  # interfaces come and go (veths, tunnels): bound the cache


@dataclass(frozen=True)
class Link:
    device: str
    up: bool
    mtu: int
    speed_bytes: float | None  # None when the OS does not know (virtual links, Wi-Fi)
    kind: str


def linux_link_kind(device: str, root: str = SYS_CLASS_NET) -> str:
    base = os.path.join(root, device)
    try:
        with open(os.path.join(base, "type")) as f:
            arp_type = f.read().strip()
    except OSError:
        return "other"
    if arp_type == ARPHRD_LOOPBACK:
        return "loopback"
    if os.path.exists(os.path.join(base, "wireless")) or os.path.exists(
        os.path.join(base, "phy80211")
    ):
        return "wifi"
    driver = os.path.basename(os.path.realpath(os.path.join(base, "device", "driver")))
    if driver == "thunderbolt-net" or device.startswith("thunderbolt"):
        return "thunderbolt"
    if arp_type == ARPHRD_ETHER and os.path.exists(os.path.join(base, "device")):
        return "ethernet"
    return "other"  # veth, bridges, tunnels: virtual links


def parse_hardware_ports(text: str) -> dict[str, str]:
    """`networksetup -listallhardwareports` -> {"en0": "Ethernet", "bridge0": ...}."""
    ports: dict[str, str] = {}
    port = None
    for line in text.splitlines():
        if line.startswith("Hardware Port:"):
            port = line.split(":", 1)[1].strip()
        elif line.startswith("Device:") and port is not None:
            ports[line.split(":", 1)[1].strip()] = port
            port = None
    return ports


def darwin_link_kind(device: str, ports: dict[str, str]) -> str:
    if device.startswith("lo"):
        return "loopback"
    port = ports.get(device, "")
    if port in ("Wi-Fi", "AirPort"):
        return "wifi"
    if "Ethernet" in port or (port.startswith("USB") and "LAN" in port):
        return "ethernet"  # includes "Thunderbolt Ethernet Slot 1", an Ethernet adapter
    if port.startswith("Thunderbolt"):
        return "thunderbolt"  # "Thunderbolt Bridge" (bridge0) and its members
    return "other"


class CachedKinds:
    """Link kind per device, looked up again after a while: kinds change only when
    hardware does, and the /sys lookups were a third of this collector's time."""

    def __init__(self, kind_of: Callable[[str], str] = linux_link_kind, clock=time.monotonic):
        self.kind_of, self.clock = kind_of, clock
        self.kinds: dict[str, tuple[str, float]] = {}

    def __call__(self, device: str) -> str:
        now = self.clock()
        cached = self.kinds.get(device)
        if cached is None and len(self.kinds) >= MAX_CACHED_KINDS:
            self.kinds.clear()
        if cached is None or now >= cached[1]:
            cached = self.kinds[device] = (self.kind_of(device), now + KIND_TTL_SECONDS)
        return cached[0]


class HardwarePorts:
    """networksetup's answer, cached for a while (read at scrape time, never in a timer)."""

    def __init__(self, read: Callable[[], str] = macos.hardware_ports, clock=time.monotonic):
        self.read, self.clock = read, clock
        self.ports: dict[str, str] = {}
        self.expires = float("-inf")

    def __call__(self) -> dict[str, str]:
        if self.clock() >= self.expires:
            self.ports = parse_hardware_ports(self.read())
            self.expires = self.clock() + HARDWARE_PORTS_TTL_SECONDS
        return self.ports


def read_links(
    stats: Callable[[], dict] = psutil.net_if_stats,
    kind: Callable[[str], str] = linux_link_kind,
) -> list[Link]:
    links = []
    for device, st in stats().items():
        speed = st.speed * 125_000 if st.speed > 0 else None  # Mbit/s -> bytes/s
        links.append(Link(device, bool(st.isup), st.mtu, speed, kind(device)))
    return links


def darwin_source(
    ports: Callable[[], dict[str, str]] | None = None,
    stats: Callable[[], dict] = psutil.net_if_stats,
) -> Callable[[], list[Link]]:
    ports = ports or HardwarePorts()
    return lambda: read_links(stats, kind=lambda device: darwin_link_kind(device, ports()))


@register
class NetclassCollector(Collector):
    name = "netclass"

    def default_source(self):
        if sys.platform == "darwin":
            return darwin_source()
        kinds = CachedKinds()
        return lambda: read_links(kind=kinds)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "node_network_up", "Whether the interface is up (1) or down (0).", labels=["device"]
        )
        mtu = GaugeMetricFamily(
            "node_network_mtu_bytes", "MTU of the interface in bytes.", labels=["device"]
        )
        speed = GaugeMetricFamily(
            "node_network_speed_bytes", "Link speed in bytes per second.", labels=["device"]
        )
        info = GaugeMetricFamily(
            "minicluster_network_link_info",
            "Kind of link behind each interface: ethernet, wifi, thunderbolt, loopback, other.",
            labels=["device", "kind"],
        )
        for link in sorted(self.source(), key=lambda link: link.device):
            up.add_metric([link.device], 1.0 if link.up else 0.0)
            mtu.add_metric([link.device], link.mtu)
            if link.speed_bytes is not None:
                speed.add_metric([link.device], link.speed_bytes)
            info.add_metric([link.device, link.kind], 1.0)
        yield up
        yield mtu
        if speed.samples:
            yield speed
        yield info
