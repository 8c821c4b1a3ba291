"""diskstats: node_exporter's `node_disk_*` families for each whole disk.

Linux: every column of /proc/diskstats (reads, writes, discards and flushes: completed,
merged, sectors as bytes, time; I/Os in progress, busy and weighted time) and
`node_disk_info{device,major,minor,path,wwn,model,serial,revision}` from udev's database
where there is one. Partitions, loop and (z)ram devices are skipped with current
node_exporter's default `--collector.diskstats.device-exclude`.
macOS: the "Statistics" of each IOBlockStorageDriver with the BSD name and block size of
its whole-disk IOMedia (the numbers `iostat` and node_exporter read): operations, bytes,
sectors, time, errors and retries for reads and writes.
"""

from __future__ import annotations

import plistlib
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from minicluster.exporter import macos
from minicluster.exporter.collectors.base import Collector, register
from minicluster.exporter.collectors.families import add_sample, labeled
from minicluster.exporter.collectors.heldfiles import read_text

# Current node_exporter's default --collector.diskstats.device-exclude.
IGNORED_DEVICES = re.compile(r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$")
PROC_DISKSTATS = "/proc/diskstats"
UDEV_DATA = "/run/udev/data"
UDEV_TTL_SECONDS = 300.0
SECTOR_BYTES = 512  # /proc/diskstats counts 512-byte sectors whatever the device's size
INFO_LABELS = ("device", "major", "minor", "path", "wwn", "model", "serial", "revision")
UDEV_KEYS = {
    "path": "ID_PATH",
    "wwn": "ID_WWN",
    "model": "ID_MODEL",
    "serial": "ID_SERIAL_SHORT",
    "revision": "ID_REVISION",
}


def _ms(value: int) -> float:
    return value / 1000


def _sectors(value: int) -> float:
    return value * SECTOR_BYTES


# /proc/diskstats column after the name -> (metric, help, counter?, conversion)
LINUX_COLUMNS: dict[int, tuple[str, str, bool, Callable[[int], float] | None]] = {
    0: ("reads_completed_total", "The total number of reads completed successfully.", True, None),
    1: ("reads_merged_total", "The total number of reads merged.", True, None),
    2: ("read_bytes_total", "The total number of bytes read successfully.", True, _sectors),
    3: ("read_time_seconds_total", "The total number of seconds spent by all reads.", True, _ms),
    4: ("writes_completed_total", "The total number of writes completed successfully.", True, None),
    5: ("writes_merged_total", "The number of writes merged.", True, None),
    6: ("written_bytes_total", "The total number of bytes written successfully.", True, _sectors),
    7: (
        "write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
        True,
        _ms,
    ),
    8: ("io_now", "The number of I/Os currently in progress.", False, None),
    9: ("io_time_seconds_total", "Total seconds spent doing I/Os.", True, _ms),
    10: (
        "io_time_weighted_seconds_total",
        "The weighted # of seconds spent doing I/Os.",
        True,
        _ms,
    ),
    11: (
        "discards_completed_total",
        "The total number of discards completed successfully.",
        True,
        None,
    ),
    12: ("discards_merged_total", "The total number of discards merged.", True, None),
    13: (
        "discarded_sectors_total",
        "The total number of sectors discarded successfully.",
        True,
        None,
    ),
    14: (
        "discard_time_seconds_total",
        "This is the total number of seconds spent by all discards.",
        True,
        _ms,
    ),
    15: (
        "flush_requests_total",
        "The total number of flush requests completed successfully",
        True,
        None,
    ),
    16: (
        "flush_requests_time_seconds_total",
        "This is the total number of seconds spent by all flush requests.",
        True,
        _ms,
    ),
}
DARWIN_METRICS = {
    "reads_completed_total": "The total number of reads completed successfully.",
    "read_sectors_total": "The total number of sectors read successfully.",
    "read_time_seconds_total": "The total number of seconds spent by all reads.",
    "writes_completed_total": "The total number of writes completed successfully.",
    "written_sectors_total": "The total number of sectors written successfully.",
    "write_time_seconds_total": "This is the total number of seconds spent by all writes.",
    "read_bytes_total": "The total number of bytes read successfully.",
    "written_bytes_total": "The total number of bytes written successfully.",
    "read_errors_total": "The total number of read errors.",
    "write_errors_total": "The total number of write errors.",
    "read_retries_total": "The total number of read retries.",
    "write_retries_total": "The total number of write retries.",
}


@dataclass(frozen=True)
class Disk:
    device: str
    values: dict[str, float]  # metric name (without node_disk_) -> value
    info: dict[str, str] = field(default_factory=dict)  # node_disk_info's labels (Linux)


def parse_diskstats(text: str) -> list[tuple[str, str, str, list[int]]]:
    """-> [(major, minor, device, [columns...])] for the devices not excluded."""
    rows = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 14 or IGNORED_DEVICES.match(fields[2]):
            continue
        rows.append((fields[0], fields[1], fields[2], [int(v) for v in fields[3:]]))
    return rows


def parse_udev(text: str) -> dict[str, str]:
    """udev's database entry: lines "E:KEY=value" are the device's properties."""
    props = {}
    for line in text.splitlines():
        if line.startswith("E:"):
            key, _, value = line[2:].partition("=")
            props[key] = value
    return props


def read_udev(major: str, minor: str, root: str = UDEV_DATA) -> dict[str, str]:
    try:
        with open(f"{root}/b{major}:{minor}") as f:
            return parse_udev(f.read())
    except OSError:
        return {}  # no udev (containers): node_disk_info has empty labels, as node_exporter


class CachedUdev:
    """udev's properties per device number, looked up again after a while (they are fixed
    for a device's life; one failed open per disk per scrape without udev adds up)."""

    def __init__(
        self, read: Callable[[str, str], dict[str, str]] = read_udev, clock=time.monotonic
    ):
        self.read, self.clock = read, clock
        self.cache: dict[tuple[str, str], tuple[dict[str, str], float]] = {}

    def __call__(self, major: str, minor: str) -> dict[str, str]:
        now = self.clock()
        cached = self.cache.get((major, minor))
        if cached is None or now >= cached[1]:
            if len(self.cache) > 1_000:
                self.cache.clear()
            props = self.read(major, minor)
            cached = self.cache[(major, minor)] = (props, now + UDEV_TTL_SECONDS)
        return cached[0]


def linux_disks(text: str, udev: Callable[[str, str], dict[str, str]] = read_udev) -> list[Disk]:
    disks = []
    for major, minor, device, columns in parse_diskstats(text):
        values = {}
        for index, value in enumerate(columns):
            if index in LINUX_COLUMNS:
                metric, _, _, convert = LINUX_COLUMNS[index]
                values[metric] = convert(value) if convert else value
        props = udev(major, minor)
        info = {"device": device, "major": major, "minor": minor}
        info.update({label: props.get(key, "") for label, key in UDEV_KEYS.items()})
        disks.append(Disk(device, values, info))
    return disks


def linux_reader(udev: Callable[[str, str], dict[str, str]] | None = None):
    udev = udev or CachedUdev()

    def read() -> list[Disk]:
        return linux_disks(read_text(PROC_DISKSTATS), udev)

    return read


def _whole_media(node: dict) -> Iterator[dict]:
    for child in node.get("IORegistryEntryChildren", []):
        if child.get("Whole") and "BSD Name" in child:
            yield child
        else:
            yield from _whole_media(child)


def darwin_disks(raw: bytes) -> list[Disk]:
    """`ioreg -a -r -c IOBlockStorageDriver -d 2` (a plist array of drivers) -> disks.

    Statistics keys are IOBlockStorageDriver.h's; its times are in nanoseconds.
    """
    disks = []
    for driver in plistlib.loads(raw):
        stats = driver.get("Statistics")
        if not stats:
            continue
        for media in _whole_media(driver):
            device = media["BSD Name"]
            if IGNORED_DEVICES.match(device):
                continue
            block = media.get("Preferred Block Size") or SECTOR_BYTES
            read_bytes = stats.get("Bytes (Read)", 0)
            written_bytes = stats.get("Bytes (Write)", 0)
            values = {
                "reads_completed_total": stats.get("Operations (Read)", 0),
                "read_sectors_total": read_bytes / block,
                "read_time_seconds_total": stats.get("Total Time (Read)", 0) / 1e9,
                "writes_completed_total": stats.get("Operations (Write)", 0),
                "written_sectors_total": written_bytes / block,
                "write_time_seconds_total": stats.get("Total Time (Write)", 0) / 1e9,
                "read_bytes_total": read_bytes,
                "written_bytes_total": written_bytes,
                "read_errors_total": stats.get("Errors (Read)", 0),
                "write_errors_total": stats.get("Errors (Write)", 0),
                "read_retries_total": stats.get("Retries (Read)", 0),
                "write_retries_total": stats.get("Retries (Write)", 0),
            }
            disks.append(Disk(device, values))
    return disks


def read_darwin() -> list[Disk]:
    return darwin_disks(macos.ioreg_block_storage())


# Every family either system publishes: name -> (help, counter?).
SPECS = {name: (text, counter) for name, text, counter, _ in LINUX_COLUMNS.values()}
SPECS.update({name: (text, True) for name, text in DARWIN_METRICS.items()})
DEVICE = ("device",)


@register
class DiskstatsCollector(Collector):
    name = "diskstats"

    def default_source(self):
        return read_darwin if sys.platform == "darwin" else linux_reader()

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        info = GaugeMetricFamily(
            "node_disk_info", "Info of /sys/block/<block_device>.", labels=list(INFO_LABELS)
        )
        for disk in sorted(self.source(), key=lambda disk: disk.device):
            for name, value in disk.values.items():
                family = families.get(name)
                if family is None:
                    text, counter = SPECS[name]
                    kind = CounterMetricFamily if counter else GaugeMetricFamily
                    family = families[name] = labeled(kind, f"node_disk_{name}", text, DEVICE)
                add_sample(family, {"device": disk.device}, value)
            if disk.info:
                info.add_metric([disk.info[label] for label in INFO_LABELS], 1.0)
        yield from families.values()
        if info.samples:
            yield info
