"""Collector sources backed by the fixtures in tests/exporter/fixtures.

`linux_sources()` and `darwin_sources()` return {collector name: source} for
`build_collectors(..., sources=...)`. Wherever the exporter has adaptation logic (psutil
records, sysctl decoding, ifmibdata, ioreg, networksetup, mount filtering), the fakes
replace only the lowest call that touches the OS, so that logic runs on the fixtures.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from types import SimpleNamespace

from minicluster.exporter.collectors import (
    arp,
    conntrack,
    diskstats,
    entropy,
    filefd,
    filesystem,
    gpu,
    meminfo,
    netclass,
    netdev,
    netstat,
    os_release,
    pressure,
    schedstat,
    selinux,
    sockstat,
    softnet,
    stat,
    textfile,
    timex,
    udp_queues,
    vmstat,
)
from minicluster.exporter.collectors.filesystem import Mount
from minicluster.exporter.collectors.process import ProcessStats
from minicluster.exporter.collectors.time import Clock

FIXTURES = Path(__file__).parent / "fixtures"
DARWIN = FIXTURES / "darwin"
LINUX = FIXTURES / "linux"
TEXTFILE = FIXTURES / "textfile"
# Fixed mtimes for the golden files (the real ones change with every checkout).
TEXTFILE_MTIME = 1732799990.5


def read_hex(path: Path) -> bytes:
    """Bytes of an annotated hex fixture: hex pairs before each '#', comments ignored."""
    text = "".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
    return bytes.fromhex(text)


@cache
def sources_json(platform: str) -> dict:
    return json.loads((FIXTURES / platform / "sources.json").read_text())


def parse_sysctl_text(text: str) -> dict[str, str]:
    """`sysctl name ...` output -> {name: value text}."""
    values = {}
    for line in text.splitlines():
        name, sep, value = line.partition(": ")
        if sep:
            values[name] = value
    return values


def parse_mount_text(text: str) -> list[Mount]:
    """macOS `mount` output -> Mount records (device, mount point, first option = type)."""
    mounts = []
    for line in text.splitlines():
        match = re.match(r"^(.*) on (.*) \(([^,)]+)", line)
        if match:
            mounts.append(Mount(match[1], match[2], match[3]))
    return mounts


def parse_vm_stat(text: str) -> dict[str, int]:
    """`vm_stat` output -> {"Pages free": 3754, ...} and "page size"."""
    values = {"page size": int(re.search(r"page size of (\d+) bytes", text)[1])}
    for line in text.splitlines()[1:]:
        name, _, value = line.rpartition(":")
        values[name.strip().strip('"')] = int(value.strip().rstrip("."))
    return values


def parse_netstat_ib(text: str) -> dict[str, dict[str, int]]:
    """`netstat -ib` link rows -> {"en0": {"Ibytes": ..., ...}}."""
    lines = text.splitlines()
    header = lines[0].split()
    rows = {}
    for line in lines[1:]:
        fields = line.split()
        if "<Link#" not in line or fields[0].endswith("*"):
            continue
        # Link rows have an Address column only for interfaces with a MAC address.
        numbers = fields[-7:]
        rows[fields[0]] = dict(zip(header[-7:], map(int, numbers), strict=True))
    return rows


def _records(data: dict) -> dict[str, SimpleNamespace]:
    return {name: SimpleNamespace(**fields) for name, fields in data.items()}


def _statvfs(data: dict):
    def statvfs(path: str):
        fields = data.get(path)
        if fields is None:
            raise OSError(5, "Input/output error", path)  # e.g. a stale network mount
        return SimpleNamespace(**fields)

    return statvfs


def _common(data: dict, platform: str) -> dict:
    return {
        "cpu": lambda: [dict(modes) for modes in data["cpu_times"]],
        "loadavg": lambda: tuple(data["loadavg"]),
        "boottime": lambda: data["boot_time"],
        "time": lambda: Clock(
            data["time"],
            "UTC",
            0,
            {"0": (["tsc", "hpet", "acpi_pm"], "tsc")} if platform == "linux" else {},
        ),
        "uname": lambda: dict(data["uname"]),
        "process": lambda: ProcessStats(**data["process"]),
        "peers": lambda: dict(data["peers"]),
        "textfile": textfile_source(),
    }


def textfile_source():
    """The fixture directory through the real reader, with paths and mtimes made stable."""
    reader = textfile.TextfileReader(str(TEXTFILE))

    def read() -> textfile.Textfiles:
        found = reader()
        found.mtimes = {
            f"/var/lib/node_exporter/textfile/{path.rsplit('/', 1)[1]}": TEXTFILE_MTIME
            for path in found.mtimes
        }
        return found

    return read


def linux_text(name: str) -> str:
    return (LINUX / name).read_text()


def linux_sources() -> dict:
    data = sources_json("linux")
    mounts = [Mount(*fields) for fields in data["mounts"]]
    kinds = data["link_kinds"]
    udev = {"259:0": diskstats.parse_udev(linux_text("udev-b259:0"))}
    return {
        **_common(data, "linux"),
        "meminfo": lambda: meminfo.parse_meminfo((LINUX / "meminfo").read_text()),
        "vmstat": lambda: vmstat.parse_vmstat((LINUX / "vmstat").read_text()),
        "filesystem": lambda: filesystem.read_filesystems(
            mounts=lambda: mounts, statvfs=_statvfs(data["statvfs"]), platform="linux"
        ),
        "netdev": lambda: netdev.read_linux(str(LINUX / "net-dev"), str(LINUX / "sys-class-net")),
        "netclass": lambda: netclass.read_linux_links(
            kinds.__getitem__, str(LINUX / "sys-class-net")
        ),
        "diskstats": lambda: diskstats.linux_disks(
            linux_text("diskstats"), udev=lambda major, minor: udev.get(f"{major}:{minor}", {})
        ),
        "stat": lambda: stat.parse_stat(linux_text("stat")),
        "pressure": lambda: pressure.read_pressure(str(LINUX / "pressure")),
        "netstat": lambda: netstat.select(
            {
                **netstat.parse_paired(linux_text("net-netstat")),
                **netstat.parse_paired(linux_text("net-snmp")),
                **netstat.parse_snmp6(linux_text("net-snmp6")),
            }
        ),
        "sockstat": lambda: {
            **sockstat.parse_sockstat(linux_text("net-sockstat"), 4096),
            **sockstat.parse_sockstat(linux_text("net-sockstat6"), 4096),
        },
        "filefd": lambda: filefd.parse_file_nr(linux_text("file-nr")),
        "conntrack": lambda: conntrack.Conntrack(
            entries=33, limit=262144, stats=conntrack.parse_stat(linux_text("nf_conntrack"))
        ),
        "softnet": lambda: softnet.parse_softnet(linux_text("softnet_stat")),
        "entropy": lambda: entropy.read_entropy(str(LINUX / "random")),
        "timex": lambda: timex.decode(dict(data["timex"]["fields"]), data["timex"]["state"]),
        "udp_queues": lambda: {
            "v4": udp_queues.parse_udp(linux_text("net-udp")),
            "v6": udp_queues.parse_udp(linux_text("net-udp6")),
        },
        "arp": lambda: arp.parse_arp(linux_text("net-arp")),
        "schedstat": lambda: schedstat.parse_schedstat(linux_text("schedstat")),
        # SELinux on, enforcing as configured.
        "selinux": lambda: selinux.Selinux(
            True, selinux.parse_config_mode("SELINUX=enforcing\nSELINUXTYPE=targeted\n"), 1
        ),
        "os": lambda: os_release.parse_os_release(linux_text("os-release")),
    }


class FakeSysctl:
    """sysctl by name, from sysctl.txt (scalars) and *.hex files (structs)."""

    def __init__(self):
        self.text = parse_sysctl_text((DARWIN / "sysctl.txt").read_text())

    def int(self, name: str) -> int:
        return int(self.text[name])

    def bytes(self, name: str) -> bytes:
        return read_hex(DARWIN / f"{name}.hex")


def ifmib_fixtures() -> dict[int, bytes]:
    return {
        int(path.name.split("-", 1)[0]): read_hex(path)
        for path in sorted((DARWIN / "ifmibdata").glob("*.hex"))
    }


def darwin_sources() -> dict:
    data = sources_json("darwin")
    sysctl = FakeSysctl()
    records = ifmib_fixtures()
    names = {index: raw[:16].split(b"\0")[0].decode() for index, raw in records.items()}
    # Index 9 vanished between listing and reading; index 10 is detached (zeroed record).
    listing = [*sorted(names.items()), (9, "utun9"), (10, "anpi0")]

    def ifmib(index: int) -> bytes:
        if index == 9:
            raise OSError(2, "No such file or directory")
        return records.get(index, bytes(180))

    iokit_raw = (DARWIN / "ioreg-IONetworkInterface.plist").read_bytes()
    if_types = {
        netdev.parse_ifmibdata(raw).name: netdev.parse_ifmibdata(raw).type
        for raw in records.values()
    }
    kinds = netclass.DarwinKinds(
        ioreg=lambda: iokit_raw,
        if_type=if_types.get,
        ifconfig=lambda device: (DARWIN / f"ifconfig-{device}.txt").read_text(),
    )
    mounts = parse_mount_text((DARWIN / "mount.txt").read_text())
    return {
        **_common(data, "darwin"),
        "meminfo": lambda: meminfo.darwin_memory(
            sysctl_int=sysctl.int,
            sysctl_bytes=sysctl.bytes,
            vm_statistics=lambda: read_hex(DARWIN / "host_vm_info64.hex"),
        ),
        "filesystem": lambda: filesystem.read_filesystems(
            mounts=lambda: mounts, statvfs=_statvfs(data["statvfs"]), platform="darwin"
        ),
        "netdev": lambda: netdev.read_darwin(interfaces=lambda: listing, ifmib=ifmib),
        "netclass": netclass.darwin_source(
            kinds=kinds, stats=lambda: _records(data["net_if_stats"])
        ),
        "diskstats": lambda: diskstats.darwin_disks(
            (DARWIN / "ioreg-IOBlockStorageDriver.plist").read_bytes()
        ),
        "os": lambda: os_release.parse_system_version(
            (DARWIN / "SystemVersion.plist").read_bytes()
        ),
        "memory_pressure": lambda: sysctl.int("kern.memorystatus_vm_pressure_level"),
        "gpu": lambda: gpu.parse_accelerators((DARWIN / "ioreg-IOAccelerator.txt").read_text()),
        "thermal": lambda: data["thermal_pressure_level"],
    }
