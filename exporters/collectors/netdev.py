"""netdev: `node_network_<field>_total{device}`, every field node_exporter publishes.

Linux: the 16 columns of /proc/net/dev (receive bytes, packets, errs, drop, fifo, frame,
compressed, multicast; transmit bytes, packets, errs, drop, fifo, colls, carrier,
compressed), which are the kernel's own sums of the netlink counters node_exporter reads,
plus `receive_nohandler` from /sys/class/net/<device>/statistics/rx_nohandler.
macOS: `net.link.generic.ifdata.<index>.general` (`struct ifmibdata`), the 64-bit
counters `netstat -ib` shows: node_exporter's darwin fields (bytes, packets, errs,
receive drop, multicast both ways, colls, noproto) plus the send-queue drops as
`transmit_drop`. psutil reads NET_RT_IFLIST2 there, whose byte counters are truncated to
32 bits since macOS 13.2.1 and wrap every 4 GiB (node_exporter #3333).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, Metric

from minicluster.exporter import macos
from minicluster.exporter.collectors.base import (
    Collector,
    for_platform,
    once_per_collection,
    register,
)
from minicluster.exporter.collectors.families import add_sample, labeled
from minicluster.exporter.collectors.heldfiles import forget_files, read_many, read_text

# struct ifmibdata (<net/if_mib.h>): name[16], pcount, flags, snd_len, snd_maxlen, snd_drops,
# filler[4], then struct if_data64 (<net/if_var.h>, #pragma pack(4), so the 64-bit fields
# sit at 4-byte offsets): 8 u_char, mtu, metric, baudrate, 11 u_int64 counters,
# recvtiming, xmittiming, struct timeval32 lastchange. 180 bytes, no padding.
IFMIBDATA = struct.Struct("<16s5I4I8B2I12Q2I2i")
assert IFMIBDATA.size == macos.IFMIBDATA_SIZE


@dataclass(frozen=True)
class IfMibData:
    name: str
    flags: int
    snd_drops: int
    type: int
    mtu: int
    baudrate: int
    ipackets: int
    ierrors: int
    opackets: int
    oerrors: int
    collisions: int
    ibytes: int
    obytes: int
    imcasts: int
    omcasts: int
    iqdrops: int
    noproto: int


def parse_ifmibdata(raw: bytes) -> IfMibData:
    fields = IFMIBDATA.unpack_from(raw)
    name = fields[0].split(b"\0", 1)[0].decode("ascii", "replace")
    (_pcount, flags, _snd_len, _snd_maxlen, snd_drops) = fields[1:6]
    if_type = fields[10]  # fields[6:10] is ifmd_filler
    mtu, _metric, baudrate = fields[18], fields[19], fields[20]
    counters = fields[21:32]
    return IfMibData(name, flags, snd_drops, if_type, mtu, baudrate, *counters)


PROC_NET_DEV = "/proc/net/dev"
SYS_CLASS_NET = "/sys/class/net"
# /proc/net/dev's columns, in order, by node_exporter's names.
LINUX_COLUMNS = (
    *("receive_bytes", "receive_packets", "receive_errs", "receive_drop"),
    *("receive_fifo", "receive_frame", "receive_compressed", "receive_multicast"),
    *("transmit_bytes", "transmit_packets", "transmit_errs", "transmit_drop"),
    *("transmit_fifo", "transmit_colls", "transmit_carrier", "transmit_compressed"),
)
# Devices -> {field: value}; a field the OS does not count is absent, so not published.
Counters = dict[str, dict[str, int]]


def parse_proc_net_dev(text: str) -> Counters:
    result = {}
    for line in text.splitlines()[2:]:
        device, sep, numbers = line.partition(":")
        if sep:
            values = map(int, numbers.split())
            result[device.strip()] = dict(zip(LINUX_COLUMNS, values, strict=False))
    return result


def _list_devices(root: str) -> list[tuple[str, int]]:
    # Devices are symbolic links (no stat needed); bonding_masters is a file beside them.
    return sorted((e.name, e.inode()) for e in os.scandir(root) if e.is_symlink() or e.is_dir())


def net_devices(root: str, known: set[tuple[str, int]]) -> list[tuple[str, int]]:
    """The devices in `root` (/sys/class/net) by name and inode, sorted.

    The held descriptors of a device that is gone are closed: a device moved to another
    network namespace keeps its sysfs files alive under the same path, and a new device
    here by that name must not be read through them. `known` is the caller's last set.
    The list is listed once per collection and shared by its callers: none changes it.
    """
    devices = once_per_collection(("net devices", root), lambda: _list_devices(root))
    current = set(devices)
    for name, _ in known - current:
        forget_files(f"{root}/{name}/")
    known.clear()
    known.update(current)
    return devices


class LinuxNetdev:
    def __init__(self, proc_net_dev: str = PROC_NET_DEV, sys_class_net: str = SYS_CLASS_NET):
        self.proc_net_dev, self.sys_class_net = proc_net_dev, sys_class_net
        self.known: set[tuple[str, int]] = set()

    def __call__(self) -> Counters:
        result = parse_proc_net_dev(read_text(self.proc_net_dev))
        with contextlib.suppress(OSError):  # no sysfs (a container without it)
            net_devices(self.sys_class_net, self.known)
        devices = list(result)
        root = self.sys_class_net
        texts = read_many([f"{root}/{d}/statistics/rx_nohandler" for d in devices])
        for device, text in zip(devices, texts, strict=True):
            with contextlib.suppress(TypeError, ValueError):  # None before Linux 4.6
                result[device]["receive_nohandler"] = int(text)
        return result


def read_linux(proc_net_dev: str = PROC_NET_DEV, sys_class_net: str = SYS_CLASS_NET) -> Counters:
    return LinuxNetdev(proc_net_dev, sys_class_net)()


def darwin_fields(data: IfMibData) -> dict[str, int]:
    return {
        "receive_bytes": data.ibytes,
        "receive_packets": data.ipackets,
        "receive_errs": data.ierrors,
        "receive_drop": data.iqdrops,
        "receive_multicast": data.imcasts,
        "transmit_bytes": data.obytes,
        "transmit_packets": data.opackets,
        "transmit_errs": data.oerrors,
        # Send-queue drops; node_exporter has none on macOS, psutil's is a constant 0.
        "transmit_drop": data.snd_drops,
        "transmit_multicast": data.omcasts,
        "transmit_colls": data.collisions,
        "noproto": data.noproto,
    }


def read_darwin(
    interfaces: Callable[[], list[tuple[int, str]]] = socket.if_nameindex,
    ifmib: Callable[[int], bytes] = macos.ifmib_bytes,
) -> Counters:
    result = {}
    for index, _ in interfaces():
        try:
            data = parse_ifmibdata(ifmib(index))
        except OSError:
            continue  # the interface went away between listing and reading
        if not data.name:
            continue  # detached: the kernel zeroes the record
        result[data.name] = darwin_fields(data)
    return result


FIELDS = (
    *LINUX_COLUMNS[:8],
    "receive_nohandler",
    *LINUX_COLUMNS[8:],
    "transmit_multicast",
    "noproto",
)


@register
class NetdevCollector(Collector):
    name = "netdev"

    def default_source(self):
        return for_platform(linux=LinuxNetdev(), darwin=read_darwin)

    def __init__(self, source=None):
        super().__init__(source)
        # Field -> its (device, value) pairs and family at the last scrape: a counter that
        # held still on every device (errors, drops, most of them between two scrapes)
        # gives the very same family again.
        self._last: dict[str, tuple[tuple, Metric]] = {}

    def collect(self) -> Iterator[Metric]:
        devices = sorted(self.source().items())
        last, now = self._last, {}
        for field in FIELDS:
            pairs = tuple((device, fields[field]) for device, fields in devices if field in fields)
            if not pairs:
                continue
            hit = last.get(field)
            if hit is not None and hit[0] == pairs:
                family = hit[1]
            else:
                family = labeled(
                    CounterMetricFamily,
                    f"node_network_{field}_total",
                    f"Network device statistic {field}.",
                    ("device",),
                )
                for device, value in pairs:
                    add_sample(family, {"device": device}, value)
            now[field] = (pairs, family)
            yield family
        self._last = now
