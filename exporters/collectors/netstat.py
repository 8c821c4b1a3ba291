"""netstat (Linux): `node_netstat_<Protocol>_<Field>` from /proc/net/{netstat,snmp,snmp6}.

Untyped, as node_exporter publishes them (the kernel mixes counters and gauges such as
Tcp_CurrEstab), limited to node_exporter's default `--collector.netstat.fields`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from prometheus_client.core import Metric, UnknownMetricFamily

from minicluster.exporter.collectors.base import LINUX_ONLY, Collector, read_optional, register
from minicluster.exporter.collectors.families import Singles
from minicluster.exporter.collectors.fieldlayout import FieldLayout

# Current node_exporter's default --collector.netstat.fields.
FIELDS = re.compile(
    r"^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|"
    r"TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue|TCPRcvQDrop)|"
    r"Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|"
    r"Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$"
)
PAIRED_FILES = ("/proc/net/netstat", "/proc/net/snmp")
SNMP6 = "/proc/net/snmp6"
_SNMP6_PROTOCOL = re.compile(r"^([A-Za-z]+6)(\w+)$")


def wanted(key: tuple[str, str]) -> bool:
    """Whether the default field set has it (asked when a layout is learned, not per read)."""
    return bool(FIELDS.match(f"{key[0]}_{key[1]}"))


# A names line -> the positions and keys of its wanted fields. The names lines are the same
# at every scrape (they change only with the kernel), so only the numbers are looked at.
_COLUMNS: dict[str, tuple[tuple[int, tuple[str, str]], ...]] = {}


def _wanted_columns(names_line: str) -> tuple[tuple[int, tuple[str, str]], ...]:
    columns = _COLUMNS.get(names_line)
    if columns is None:
        if len(_COLUMNS) > 1_000:
            _COLUMNS.clear()
        protocol, _, names = names_line.partition(":")
        keys = ((i, (protocol, name)) for i, name in enumerate(names.split()))
        columns = _COLUMNS[names_line] = tuple((i, key) for i, key in keys if wanted(key))
    return columns


def parse_paired(text: str) -> dict[tuple[str, str], float]:
    """/proc/net/netstat and /proc/net/snmp: a names line, then a values line, per protocol."""
    values = {}
    lines = text.splitlines()
    for names, numbers in zip(lines[::2], lines[1::2], strict=False):
        columns = _wanted_columns(names)
        if not columns:
            continue
        numbers = numbers.partition(":")[2].split()
        for i, key in columns:
            if i < len(numbers):
                values[key] = float(numbers[i])
    return values


def _snmp6_key(name: str) -> tuple[str, str] | None:
    """An snmp6 name ("Ip6InReceives") -> its (protocol, field) key when wanted, else None."""
    match = _SNMP6_PROTOCOL.match(name)
    key = (match[1], match[2]) if match else None
    return key if key is not None and wanted(key) else None


def _locate_snmp6(words: Sequence[str]) -> list[tuple[int, int, tuple[str, str]]]:
    """Each line is "Ip6InReceives  123": the names at even positions."""
    keys = ((i, _snmp6_key(words[i])) for i in range(0, len(words) - 1, 2))
    return [(i, i + 1, key) for i, key in keys if key is not None]


_SNMP6_LAYOUT = FieldLayout(_locate_snmp6)


def parse_snmp6(text: str) -> dict[tuple[str, str], float]:
    """/proc/net/snmp6: one "Ip6InReceives  123" per line."""
    return {key: float(number) for key, number in _SNMP6_LAYOUT.fields(text)}


def select(values: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    return {key: v for key, v in values.items() if wanted(key)}


def read_netstat() -> dict[tuple[str, str], float]:
    values: dict[tuple[str, str], float] = {}
    for path in PAIRED_FILES:
        text = read_optional(path)
        if text is not None:
            values.update(parse_paired(text))
    text = read_optional(SNMP6)  # absent when IPv6 is disabled
    if text is not None:
        values.update(parse_snmp6(text))
    return values


@register
class NetstatCollector(Collector):
    name = "netstat"
    platforms = LINUX_ONLY

    def default_source(self):
        return read_netstat

    def collect(self) -> Iterator[Metric]:
        family = self.families
        for key, value in sorted(self.source().items()):
            yield family(key, value)

    families = Singles(
        lambda key: (
            UnknownMetricFamily,
            f"node_netstat_{key[0]}_{key[1]}",
            f"Statistic {key[0]}{key[1]}.",
        )
    )
