"""netclass: link attributes per interface, and what kind of link it is.

Linux: node_exporter's netclass families from /sys/class/net/<device>/ (`node_network_up`
from operstate, `node_network_info{address,broadcast,device,duplex,ifalias,operstate}`,
carrier and its change counters, speed, mtu, flags, ids, queue length, ...).
macOS: `node_network_up`, `node_network_mtu_bytes`, `node_network_speed_bytes` (where the
OS knows the speed); node_exporter has no netclass there.
Both: `minicluster_network_link_info{device,kind}`, kind ethernet, wifi, thunderbolt,
loopback or other: on a Mac en0 may be Ethernet or Wi-Fi and the training link may be the
Thunderbolt Bridge, which node_exporter cannot tell apart. The kind comes from what the
system reports about the interface (ARP type and driver on Linux; the IOKit classes of the
interface and its controller, and the interface type, on macOS), never from a port's
display name: USB and dock Ethernet adapters carry all sorts of names.
"""

from __future__ import annotations

import os
import plistlib
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from minicluster.exporter import macos
from minicluster.exporter.collectors.base import Collector, register
from minicluster.exporter.collectors.families import add_sample
from minicluster.exporter.collectors.heldfiles import read_many, read_text
from minicluster.exporter.collectors.linkevents import LinkEvents
from minicluster.exporter.collectors.netdev import net_devices, parse_ifmibdata

KINDS = ("ethernet", "wifi", "thunderbolt", "loopback", "other")
SYS_CLASS_NET = "/sys/class/net"
ARPHRD_ETHER, ARPHRD_LOOPBACK = "1", "772"
KIND_TTL_SECONDS = 300.0  # kinds change only when hardware does
# Link attributes are read again at least this often even when no change was announced.
REFRESH_SECONDS = 60.0
MAX_CACHED_KINDS = 1_000  # interfaces come and go (veths, tunnels): bound the cache
# <net/if_types.h>
IFT_ETHER, IFT_LOOP, IFT_BRIDGE = 0x6, 0x18, 0xD1
# SystemConfiguration's rule: an interface under an 802.11 controller is Wi-Fi, under
# AppleThunderboltIPPort it is Thunderbolt networking. Class names, not display names.
_WIFI_CLASS = re.compile(r"80211|WLAN|AirPort")
_THUNDERBOLT_IP_CLASS = re.compile(r"ThunderboltIP")

# sysfs attribute -> (metric, help, counter?); integers, read as node_exporter reads them.
ATTRIBUTES = {
    "addr_assign_type": (
        "address_assign_type",
        "Network device property: address_assign_type",
        False,
    ),
    "carrier": ("carrier", "Network device property: carrier", False),
    "carrier_changes": (
        "carrier_changes_total",
        "Network device property: carrier_changes_total",
        True,
    ),
    "carrier_up_count": (
        "carrier_up_changes_total",
        "Network device property: carrier_up_changes_total",
        True,
    ),
    "carrier_down_count": (
        "carrier_down_changes_total",
        "Network device property: carrier_down_changes_total",
        True,
    ),
    "dev_id": ("device_id", "Network device property: device_id", False),
    "dormant": ("dormant", "Network device property: dormant", False),
    "flags": ("flags", "Network device property: flags", False),
    "ifindex": ("iface_id", "Network device property: iface_id", False),
    "iflink": ("iface_link", "Network device property: iface_link", False),
    "link_mode": ("iface_link_mode", "Network device property: iface_link_mode", False),
    "mtu": ("mtu_bytes", "Network device property: mtu_bytes", False),
    "name_assign_type": ("name_assign_type", "Network device property: name_assign_type", False),
    "netdev_group": ("net_dev_group", "Network device property: net_dev_group", False),
    "speed": ("speed_bytes", "Network device property: speed_bytes", False),
    "tx_queue_len": (
        "transmit_queue_length",
        "Network device property: transmit_queue_length",
        False,
    ),
    "type": ("protocol_type", "Network device property: protocol_type", False),
}
INFO_FILES = ("address", "broadcast", "duplex", "ifalias", "operstate")
INFO_LABELS = ("address", "broadcast", "device", "duplex", "ifalias", "operstate")


@dataclass(frozen=True)
class Link:
    device: str
    up: bool
    kind: str
    mtu: int | None = None
    speed_bytes: float | None = None  # None when the OS does not know (virtual links, Wi-Fi)
    attributes: dict[str, float] = field(default_factory=dict)  # Linux: metric -> value
    info: dict[str, str] = field(default_factory=dict)  # Linux: node_network_info's labels


def _read(path: str) -> str | None:
    """One sysfs attribute; None where the driver does not support it (EINVAL, ENOENT)."""
    try:
        return read_text(path).strip()
    except OSError:
        return None


# Attributes fixed for the life of a device (its type, how its address and name were
# assigned, its index and link); read once per device rather than at every scrape.
STATIC_ATTRIBUTES = frozenset(
    {"addr_assign_type", "dev_id", "ifindex", "iflink", "link_mode", "name_assign_type", "type"}
)


def read_sysfs_link(
    device: str, root: str = SYS_CLASS_NET, names=ATTRIBUTES, hold: bool = True
) -> tuple[dict[str, float], dict[str, str]]:
    base = f"{root}/{device}/"
    names = tuple(names)
    texts = read_many([base + name for name in (*names, *INFO_FILES)], hold)
    attributes = {}
    for name, text in zip(names, texts, strict=False):
        text = text.strip() if text else None
        if not text:
            continue
        try:
            value = int(text, 0)  # dev_id and flags are hex ("0x1003")
        except ValueError:
            continue
        metric = ATTRIBUTES[name][0]
        attributes[metric] = value * 125_000 if name == "speed" else value  # Mbit/s -> B/s
    info = {
        name: (text or "").strip()
        for name, text in zip(INFO_FILES, texts[len(names) :], strict=True)
    }
    info["device"] = device
    return attributes, info


class SysfsLinks:
    """Reads each device's changing attributes at every scrape and its fixed ones once.

    A device is known by its name and the inode of its /sys/class/net entry, so one that
    is deleted and created again under the same name is read afresh.

    With `events` (a LinkEvents), the changing attributes too are served from the last
    read while the kernel announced no link change (see linkevents.py for why every one
    of them comes with an announcement), the device listing is the same, and less than
    REFRESH_SECONDS have passed (a backstop for a driver that changes one without telling).
    Kept only when this process's network namespace is the one /sys shows (each device's
    ifindex there is its index here): the socket hears its own namespace only.
    """

    def __init__(
        self,
        root: str = SYS_CLASS_NET,
        events: LinkEvents | None = None,
        clock: Callable[[], float] = time.monotonic,
        same_namespace: Callable[[list[Link]], bool] | None = None,
    ):
        self.root = root
        self.static: dict[tuple[str, int], dict[str, float]] = {}
        self.changing = tuple(name for name in ATTRIBUTES if name not in STATIC_ATTRIBUTES)
        self.known: set[tuple[str, int]] = set()
        self.events, self.clock = events, clock
        self.same_namespace = same_namespace or _same_namespace
        self.last: tuple[list[tuple[str, int]], list[Link], float] | None = None

    def devices(self) -> list[tuple[str, int]]:
        return net_devices(self.root, self.known)

    def __call__(self, kind: Callable[[str], str]) -> list[Link]:
        # Drained before anything is read: a change during the read is heard next time.
        changed = self.events is None or self.events.changed()
        devices = self.devices()
        last = self.last
        if not changed and last is not None and last[0] == devices and self.clock() < last[2]:
            links = last[1]
            if all(kind(link.device) == link.kind for link in links):
                return links  # the very same list: the collector reuses its families too
            links = [replace(link, kind=kind(link.device)) for link in links]
            self.last = (devices, links, last[2])
            return links
        links = self._read(devices, kind)
        self.last = None
        if self.events is not None and self.same_namespace(links):
            self.last = (devices, links, self.clock() + REFRESH_SECONDS)
        return links

    def _read(self, devices: list[tuple[str, int]], kind: Callable[[str], str]) -> list[Link]:
        links = []
        if len(self.static) > len(devices) + MAX_CACHED_KINDS:
            self.static.clear()
        for key in devices:
            device = key[0]
            fixed = self.static.get(key)
            if fixed is None:
                fixed, _ = read_sysfs_link(device, self.root, STATIC_ATTRIBUTES, hold=False)
                self.static[key] = fixed
            values, info = read_sysfs_link(device, self.root, self.changing)
            if not info["operstate"] and not values:
                self.static.pop(key, None)
                continue  # removed between listing and reading
            values.update(fixed)
            links.append(
                Link(device, info["operstate"] == "up", kind(device), attributes=values, info=info)
            )
        return links


def _same_namespace(links: list[Link]) -> bool:
    """Whether every device's ifindex in /sys is its index in this network namespace."""
    try:
        return all(
            socket.if_nametoindex(link.device) == link.attributes.get("iface_id") for link in links
        )
    except OSError:  # a device this namespace does not have
        return False


def linux_link_kind(device: str, root: str = SYS_CLASS_NET) -> str:
    base = os.path.join(root, device)
    arp_type = _read(os.path.join(base, "type"))
    if arp_type is None:
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


def read_linux_links(kind: Callable[[str], str], root: str = SYS_CLASS_NET) -> list[Link]:
    return SysfsLinks(root)(kind)


# macOS


def parse_ioreg_interfaces(raw: bytes) -> dict[str, tuple[tuple[str, ...], int | None]]:
    """`ioreg -a -t -r -c IONetworkInterface -d 1` -> {BSD name: (classes root..self, type)}.

    With -t each match comes wrapped in its ancestors, each holding the next as its
    IORegistryEntryChildren (a dictionary there, an array below a match).
    """
    result: dict[str, tuple[tuple[str, ...], int | None]] = {}

    def walk(node: dict, chain: tuple[str, ...]) -> None:
        chain = (*chain, node.get("IOObjectClass", ""))
        name = node.get("BSD Name")
        if name:
            result[name] = (chain, node.get("IOInterfaceType"))
        children = node.get("IORegistryEntryChildren", [])
        for child in [children] if isinstance(children, dict) else children:
            walk(child, chain)

    for root in plistlib.loads(raw):
        walk(root, ())
    return result


def iokit_kind(chain: tuple[str, ...], if_type: int | None) -> str:
    if any(_WIFI_CLASS.search(name) for name in chain):
        return "wifi"
    if any(_THUNDERBOLT_IP_CLASS.search(name) for name in chain):
        return "thunderbolt"
    if any("Bluetooth" in name for name in chain):
        return "other"  # Bluetooth PAN is Ethernet-typed but no wired link
    if if_type == IFT_ETHER:
        return "ethernet"  # built-in, USB, dock and PCIe Ethernet alike
    return "other"  # Bluetooth PAN and the rest


def parse_bridge_members(ifconfig_text: str) -> list[str]:
    """`ifconfig bridge0` -> its member interfaces (lines "member: en2 flags=3<...>")."""
    return [
        line.split()[1] for line in ifconfig_text.splitlines() if line.strip().startswith("member:")
    ]


def darwin_link_kinds(
    devices: list[str],
    iokit: dict[str, tuple[tuple[str, ...], int | None]],
    if_type: Callable[[str], int | None],
    members: Callable[[str], list[str]],
) -> dict[str, str]:
    kinds = {device: iokit_kind(*iokit[device]) for device in devices if device in iokit}
    for device in devices:
        if device in kinds:
            continue
        kind_type = if_type(device)
        if kind_type == IFT_LOOP:
            kinds[device] = "loopback"
        elif kind_type == IFT_BRIDGE:
            # A bridge is the kind of all its members (the Thunderbolt Bridge: thunderbolt).
            found = {iokit_kind(*iokit[m]) if m in iokit else "other" for m in members(device)}
            kinds[device] = found.pop() if len(found) == 1 else "other"
        else:
            kinds[device] = "other"  # utun, awdl without IOKit entry, gif, stf, ...
    return kinds


def darwin_if_type(device: str) -> int | None:
    try:
        return parse_ifmibdata(macos.ifmib_bytes(socket.if_nametoindex(device))).type
    except OSError:
        return None


class DarwinKinds:
    """The kinds of this Mac's interfaces, asked of IOKit again after a while (read at
    scrape time, never in a timer: one ioreg, and one ifconfig per bridge, per 5 minutes)."""

    def __init__(
        self,
        ioreg: Callable[[], bytes] = macos.ioreg_network_interfaces,
        if_type: Callable[[str], int | None] = darwin_if_type,
        ifconfig: Callable[[str], str] = macos.ifconfig,
        clock=time.monotonic,
    ):
        self.ioreg, self.if_type, self.ifconfig, self.clock = ioreg, if_type, ifconfig, clock
        self.kinds: dict[str, str] = {}
        self.expires = float("-inf")

    def __call__(self, devices: list[str]) -> dict[str, str]:
        if self.clock() >= self.expires or not set(devices) <= set(self.kinds):
            iokit = parse_ioreg_interfaces(self.ioreg())
            self.kinds = darwin_link_kinds(
                devices, iokit, self.if_type, lambda d: parse_bridge_members(self.ifconfig(d))
            )
            self.expires = self.clock() + KIND_TTL_SECONDS
        return self.kinds


def darwin_source(
    kinds: Callable[[list[str]], dict[str, str]] | None = None,
    stats: Callable[[], dict] = psutil.net_if_stats,
) -> Callable[[], list[Link]]:
    kinds = kinds or DarwinKinds()

    def read() -> list[Link]:
        current = stats()
        kind = kinds(sorted(current))
        return [
            Link(
                device,
                bool(st.isup),
                kind.get(device, "other"),
                mtu=st.mtu,
                speed_bytes=st.speed * 125_000 if st.speed > 0 else None,  # Mbit/s -> B/s
            )
            for device, st in current.items()
        ]

    return read


@register
class NetclassCollector(Collector):
    name = "netclass"
    _cached: tuple[list[Link], list[Metric]] | None = None

    def default_source(self):
        if sys.platform == "darwin":
            return darwin_source()
        kinds, links = CachedKinds(), SysfsLinks(events=LinkEvents())
        return lambda: links(kinds)

    def collect(self) -> Iterator[Metric]:
        links = self.source()
        cached = self._cached
        if cached is not None and cached[0] is links:
            # The source handed back the very list it gave last time (nothing changed):
            # the families built from it then are the answer (nothing mutates them).
            yield from cached[1]
            return
        families = list(self._families(links))
        self._cached = (links, families)
        yield from families

    def _families(self, links: list[Link]) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "node_network_up",
            "Value is 1 if operstate is 'up', 0 otherwise.",
            labels=["device"],
        )
        info = GaugeMetricFamily(
            "node_network_info",
            "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
            labels=list(INFO_LABELS),
        )
        attributes: dict[str, Metric] = {}
        kind = GaugeMetricFamily(
            "minicluster_network_link_info",
            "Kind of link behind each interface: ethernet, wifi, thunderbolt, loopback, other.",
            labels=["device", "kind"],
        )
        for link in sorted(links, key=lambda link: link.device):
            device = link.device
            add_sample(up, {"device": device}, 1.0 if link.up else 0.0)
            if link.info:
                add_sample(info, {label: link.info[label] for label in INFO_LABELS}, 1.0)
            values = dict(link.attributes)
            if link.mtu is not None:
                values["mtu_bytes"] = link.mtu
            if link.speed_bytes is not None:
                values["speed_bytes"] = link.speed_bytes
            for metric, value in values.items():
                family = attributes.get(metric)
                if family is None:
                    family = attributes[metric] = _attribute_family(metric)
                add_sample(family, {"device": device}, value)
            add_sample(kind, {"device": device, "kind": link.kind}, 1.0)
        yield up
        if info.samples:
            yield info
        yield from (attributes[name] for name in sorted(attributes))
        yield kind


_BY_METRIC = {metric: (text, counter) for metric, text, counter in ATTRIBUTES.values()}


def _attribute_family(metric: str) -> Metric:
    text, counter = _BY_METRIC[metric]
    kind = CounterMetricFamily if counter else GaugeMetricFamily
    return kind(f"node_network_{metric}", text, labels=["device"])
