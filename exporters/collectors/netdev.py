"""netdev: `node_network_{receive,transmit}_{bytes,packets,errs,drop}_total{device}`.

Linux: /proc/net/dev (through psutil), 64-bit counters.
macOS: `net.link.generic.ifdata.<index>.general` (`struct ifmibdata`), the 64-bit
counters `netstat -ib` shows. psutil reads NET_RT_IFLIST2 there, whose byte counters are
truncated to 32 bits since macOS 13.2.1 and wrap every 4 GiB (node_exporter #3333).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psutil
from prometheus_client.core import CounterMetricFamily, Metric

from minicluster.exporter import macos
from minicluster.exporter.collectors.base import Collector, for_platform, register

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


@dataclass(frozen=True)
class InterfaceCounters:
    device: str
    receive_bytes: int
    transmit_bytes: int
    receive_packets: int
    transmit_packets: int
    receive_errs: int
    transmit_errs: int
    receive_drop: int | None
    transmit_drop: int | None  # None: the OS does not count it, so nothing is published


def read_linux(counters: Callable[..., dict] = psutil.net_io_counters) -> list[InterfaceCounters]:
    return [
        InterfaceCounters(
            device,
            receive_bytes=io.bytes_recv,
            transmit_bytes=io.bytes_sent,
            receive_packets=io.packets_recv,
            transmit_packets=io.packets_sent,
            receive_errs=io.errin,
            transmit_errs=io.errout,
            receive_drop=io.dropin,
            transmit_drop=io.dropout,
        )
        for device, io in counters(pernic=True, nowrap=False).items()
    ]


def read_darwin(
    interfaces: Callable[[], list[tuple[int, str]]] = socket.if_nameindex,
    ifmib: Callable[[int], bytes] = macos.ifmib_bytes,
) -> list[InterfaceCounters]:
    result = []
    for index, _ in interfaces():
        try:
            data = parse_ifmibdata(ifmib(index))
        except OSError:
            continue  # the interface went away between listing and reading
        if not data.name:
            continue  # detached: the kernel zeroes the record
        result.append(
            InterfaceCounters(
                data.name,
                receive_bytes=data.ibytes,
                transmit_bytes=data.obytes,
                receive_packets=data.ipackets,
                transmit_packets=data.opackets,
                receive_errs=data.ierrors,
                transmit_errs=data.oerrors,
                receive_drop=data.iqdrops,
                # Send-queue drops; psutil's "dropout" is a constant 0 on macOS.
                transmit_drop=data.snd_drops,
            )
        )
    return result


FIELDS = {
    "receive_bytes": "Network device statistic receive_bytes.",
    "receive_packets": "Network device statistic receive_packets.",
    "receive_errs": "Network device statistic receive_errs.",
    "receive_drop": "Network device statistic receive_drop.",
    "transmit_bytes": "Network device statistic transmit_bytes.",
    "transmit_packets": "Network device statistic transmit_packets.",
    "transmit_errs": "Network device statistic transmit_errs.",
    "transmit_drop": "Network device statistic transmit_drop.",
}


@register
class NetdevCollector(Collector):
    name = "netdev"

    def default_source(self):
        return for_platform(linux=read_linux, darwin=read_darwin)

    def collect(self) -> Iterator[Metric]:
        families = {
            field: CounterMetricFamily(f"node_network_{field}_total", text, labels=["device"])
            for field, text in FIELDS.items()
        }
        for counters in sorted(self.source(), key=lambda c: c.device):
            for field, family in families.items():
                value = getattr(counters, field)
                if value is not None:
                    family.add_metric([counters.device], value)
        yield from (family for family in families.values() if family.samples)
