"""meminfo: node_exporter's memory names for the platform it runs on.

Linux: every /proc/meminfo field, `node_memory_MemTotal_bytes`, `..._MemAvailable_bytes`, ...
macOS: `node_memory_{total,free,active,inactive,wired,compressed,purgeable,internal}_bytes`,
`node_memory_swap_{total,used}_bytes`, `node_memory_swapped_{in,out}_bytes_total`.
macOS has no MemAvailable; alerts normalise the two in recording rules.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from minicluster.exporter import macos
from minicluster.exporter.collectors.base import Collector, for_platform, register
from minicluster.exporter.collectors.families import Singles
from minicluster.exporter.collectors.fieldlayout import FieldLayout
from minicluster.exporter.collectors.heldfiles import read_text

_PARENTHESES = re.compile(r"\((.*)\)")

# struct vm_statistics64 (<mach/vm_statistics.h>): 4 natural_t, 9 uint64, 2 natural_t,
# 4 uint64, 4 natural_t, 1 uint64; naturally aligned, 152 bytes.
VM_STATISTICS64 = struct.Struct("<4I9Q2I4Q4IQ")
VM_STATISTICS64_FIELDS = (
    *("free_count", "active_count", "inactive_count", "wire_count"),
    *("zero_fill_count", "reactivations", "pageins", "pageouts", "faults", "cow_faults"),
    *("lookups", "hits", "purges"),
    *("purgeable_count", "speculative_count"),
    *("decompressions", "compressions", "swapins", "swapouts"),
    *("compressor_page_count", "throttled_count", "external_page_count", "internal_page_count"),
    "total_uncompressed_pages_in_compressor",
)
# struct xsw_usage (<sys/sysctl.h>), the value of vm.swapusage.
XSW_USAGE = struct.Struct("<3QIi")


def _locate(words: Sequence[str]) -> list[tuple[int, int, tuple[str, float]]]:
    """Each line is "Name: number" with " kB" after it, or not (HugePages_Total: 0)."""
    fields = []
    for i, word in enumerate(words[:-1]):
        if word.endswith(":"):
            key = word[:-1]
            if "(" in key:
                key = _PARENTHESES.sub(r"_\1", key)  # Active(anon) -> Active_anon
            in_kb = i + 2 < len(words) and words[i + 2] == "kB"  # the unit is always kB
            fields.append((i, i + 1, (f"{key}_bytes", 1024.0) if in_kb else (key, 1.0)))
    return fields


_LAYOUT = FieldLayout(_locate)


def parse_meminfo(text: str) -> dict[str, float]:
    """/proc/meminfo -> {"MemTotal_bytes": ..., "HugePages_Total": ...} as node_exporter names."""
    return {key: float(number) * scale for (key, scale), number in _LAYOUT.fields(text)}


def read_linux() -> dict[str, float]:
    return parse_meminfo(read_text("/proc/meminfo"))


def parse_vm_statistics64(raw: bytes) -> dict[str, int]:
    return dict(zip(VM_STATISTICS64_FIELDS, VM_STATISTICS64.unpack_from(raw), strict=True))


def parse_xsw_usage(raw: bytes) -> dict[str, int]:
    total, avail, used, pagesize, _encrypted = XSW_USAGE.unpack_from(raw)
    return {"total": total, "avail": avail, "used": used, "pagesize": pagesize}


def darwin_memory(
    sysctl_int: Callable[[str], int] = macos.sysctl_int,
    sysctl_bytes: Callable[[str], bytes] = macos.sysctl_bytes,
    vm_statistics: Callable[[], bytes] = macos.host_vm_statistics64,
) -> dict[str, float]:
    vm = parse_vm_statistics64(vm_statistics())
    swap = parse_xsw_usage(sysctl_bytes("vm.swapusage"))
    # The kernel's page size: hw.pagesize is the calling process's, 4096 under Rosetta
    # on a 16 KiB-page kernel, which would undercount every figure by four.
    page = sysctl_int("vm.pagesize")
    return {
        "total_bytes": sysctl_int("hw.memsize"),
        "free_bytes": vm["free_count"] * page,
        "active_bytes": vm["active_count"] * page,
        "inactive_bytes": vm["inactive_count"] * page,
        "wired_bytes": vm["wire_count"] * page,
        "compressed_bytes": vm["compressor_page_count"] * page,
        "purgeable_bytes": vm["purgeable_count"] * page,
        "internal_bytes": vm["internal_page_count"] * page,
        "swap_total_bytes": swap["total"],
        "swap_used_bytes": swap["used"],
        # Pages moved to and from swap. node_exporter uses pageins/pageouts here, which
        # count file paging too; swapins/swapouts are the swap traffic an alert wants.
        "swapped_in_bytes_total": vm["swapins"] * page,
        "swapped_out_bytes_total": vm["swapouts"] * page,
    }


@register
class MeminfoCollector(Collector):
    name = "meminfo"

    def default_source(self):
        return for_platform(linux=read_linux, darwin=darwin_memory)

    def collect(self) -> Iterator[Metric]:
        family = self.families
        for key, value in self.source().items():
            yield family(key, value)

    families = Singles(
        lambda key: (
            CounterMetricFamily if key.endswith("_total") else GaugeMetricFamily,
            f"node_memory_{key}",
            f"Memory information field {key}.",
        )
    )
