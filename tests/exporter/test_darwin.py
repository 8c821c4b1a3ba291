"""macOS code paths on fixtures of macOS output (nothing here runs a Mac).

Packed structs are cross-checked against the text the Mac's own tools print for the same
data (netstat -ib, vm_stat, sysctl), so a wrong offset cannot go unnoticed. Output recorded
on real Macs (fixtures/darwin/recorded/, sources in its sources.md) runs through the same
readers, and the built text fixtures are checked against its layout.
"""

from __future__ import annotations

import re
import struct
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from minicluster.exporter import macos
from minicluster.exporter.collectors import (
    diskstats,
    filesystem,
    gpu,
    meminfo,
    memory_pressure,
    netclass,
    netdev,
    os_release,
    thermal,
)
from minicluster.exporter.options import Options
from minicluster.exporter.registry import build_collectors
from minicluster.exporter.scrape import run_collector
from tests.exporter import fakes
from tests.exporter.fakes import DARWIN, read_hex

RECORDED = DARWIN / "recorded"
IFI_IBYTES_OFFSET = 116  # 52 (ifmibdata header) + 16 (if_data64 bytes, mtu, metric) + 6*8


def registry_of(collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def test_ifmibdata_layout_matches_netstat_ib():
    netstat = fakes.parse_netstat_ib((DARWIN / "netstat-ib.txt").read_text())
    records = fakes.ifmib_fixtures()
    assert set(records) == {1, 4, 5, 6, 8}
    for raw in records.values():
        assert len(raw) == macos.IFMIBDATA_SIZE == 180
        data = netdev.parse_ifmibdata(raw)
        row = netstat[data.name]
        assert (data.ipackets, data.ierrors, data.ibytes) == (
            row["Ipkts"],
            row["Ierrs"],
            row["Ibytes"],
        )
        assert (data.opackets, data.oerrors, data.obytes, data.collisions) == (
            row["Opkts"],
            row["Oerrs"],
            row["Obytes"],
            row["Coll"],
        )


def test_ifmibdata_header_fields():
    en0 = netdev.parse_ifmibdata(read_hex(DARWIN / "ifmibdata" / "4-en0.hex"))
    assert (en0.name, en0.mtu, en0.type, en0.baudrate) == ("en0", 1500, 6, 1_000_000_000)
    assert en0.flags & 0x1 and en0.flags & 0x40  # IFF_UP, IFF_RUNNING
    assert en0.iqdrops == 17
    lo0 = netdev.parse_ifmibdata(read_hex(DARWIN / "ifmibdata" / "1-lo0.hex"))
    assert (lo0.name, lo0.mtu, lo0.type) == ("lo0", 16384, 0x18)  # IFT_LOOP
    bridge = netdev.parse_ifmibdata(read_hex(DARWIN / "ifmibdata" / "8-bridge0.hex"))
    assert bridge.type == 0xD1  # IFT_BRIDGE


def test_darwin_netdev_uses_64bit_counters_and_skips_vanished_interfaces():
    collector = netdev.NetdevCollector(fakes.darwin_sources()["netdev"])
    registry = registry_of(collector)
    get = registry.get_sample_value
    en0 = {"device": "en0"}
    assert get("node_network_receive_bytes_total", en0) == 187364912384  # > 2**32
    assert get("node_network_transmit_bytes_total", en0) == 201845337088
    assert get("node_network_receive_packets_total", en0) == 142117839
    assert get("node_network_receive_drop_total", en0) == 17  # ifi_iqdrops
    assert get("node_network_transmit_drop_total", {"device": "en1"}) == 3  # ifmd_snd_drops
    # The rest of node_exporter's darwin fields, straight from if_data64.
    en0_record = netdev.parse_ifmibdata(read_hex(DARWIN / "ifmibdata" / "4-en0.hex"))
    assert get("node_network_receive_multicast_total", en0) == en0_record.imcasts
    assert get("node_network_transmit_multicast_total", en0) == en0_record.omcasts
    assert get("node_network_transmit_colls_total", en0) == en0_record.collisions
    assert get("node_network_noproto_total", en0) == en0_record.noproto
    assert get("node_network_receive_fifo_total", en0) is None  # Linux only
    devices = {s.labels["device"] for f in collector.collect() for s in f.samples}
    # utun9 vanished (ENOENT) and anpi0 is detached (zeroed record): neither is published.
    assert devices == {"lo0", "en0", "en1", "en2", "bridge0"}


def test_byte_counter_keeps_counting_where_psutils_32bit_one_wraps():
    """Across the 4 GiB boundary the 32-bit view (psutil's, since macOS 13.2.1) goes
    backwards; the ifmibdata counter the exporter publishes keeps increasing."""
    template = bytearray(read_hex(DARWIN / "ifmibdata" / "4-en0.hex"))
    readings = [2**32 - 1_000, 2**32 + 5_000]
    published = []
    for ibytes in readings:
        raw = bytearray(template)
        struct.pack_into("<Q", raw, IFI_IBYTES_OFFSET, ibytes)
        source = netdev.read_darwin(interfaces=lambda: [(4, "en0")], ifmib=lambda _, r=raw: r)
        registry = registry_of(netdev.NetdevCollector(lambda s=source: s))
        published.append(
            registry.get_sample_value("node_network_receive_bytes_total", {"device": "en0"})
        )
    truncated = [value % 2**32 for value in readings]
    assert truncated[1] < truncated[0]  # what a 32-bit counter shows: a bogus reset
    assert published == readings
    assert published[1] - published[0] == 6_000


def test_vm_statistics64_matches_vm_stat():
    vm = meminfo.parse_vm_statistics64(read_hex(DARWIN / "host_vm_info64.hex"))
    text = fakes.parse_vm_stat((DARWIN / "vm_stat.txt").read_text())
    assert vm["free_count"] - vm["speculative_count"] == text["Pages free"]
    pairs = {
        "active_count": "Pages active",
        "inactive_count": "Pages inactive",
        "speculative_count": "Pages speculative",
        "throttled_count": "Pages throttled",
        "wire_count": "Pages wired down",
        "purgeable_count": "Pages purgeable",
        "faults": "Translation faults",
        "cow_faults": "Pages copy-on-write",
        "zero_fill_count": "Pages zero filled",
        "reactivations": "Pages reactivated",
        "purges": "Pages purged",
        "external_page_count": "File-backed pages",
        "internal_page_count": "Anonymous pages",
        "total_uncompressed_pages_in_compressor": "Pages stored in compressor",
        "compressor_page_count": "Pages occupied by compressor",
        "decompressions": "Decompressions",
        "compressions": "Compressions",
        "pageins": "Pageins",
        "pageouts": "Pageouts",
        "swapins": "Swapins",
        "swapouts": "Swapouts",
    }
    for field, label in pairs.items():
        assert vm[field] == text[label], field


def test_swapusage_matches_sysctl_text():
    swap = meminfo.parse_xsw_usage(read_hex(DARWIN / "vm.swapusage.hex"))
    line = fakes.parse_sysctl_text((DARWIN / "sysctl.txt").read_text())["vm.swapusage"]
    total, used, free = (float(x) * 2**20 for x in re.findall(r"= ([\d.]+)M", line))
    assert (swap["total"], swap["used"], swap["avail"]) == (total, used, free)
    assert swap["pagesize"] == 16384


def test_darwin_memory_uses_the_kernels_page_size_not_the_process():
    sysctl = fakes.FakeSysctl()
    # Under Rosetta hw.pagesize answers the translated process's 4 KiB pages.
    rosetta = {**sysctl.text, "hw.pagesize": "4096"}
    memory = meminfo.darwin_memory(
        sysctl_int=lambda name: int(rosetta[name]),
        sysctl_bytes=sysctl.bytes,
        vm_statistics=lambda: read_hex(DARWIN / "host_vm_info64.hex"),
    )
    vm_stat = fakes.parse_vm_stat((DARWIN / "vm_stat.txt").read_text())
    assert vm_stat["page size"] == int(sysctl.text["vm.pagesize"]) == 16384
    assert memory["active_bytes"] == vm_stat["Pages active"] * 16384
    assert memory["wired_bytes"] == vm_stat["Pages wired down"] * 16384


def test_darwin_diskstats_from_iokit_block_storage_statistics():
    collector = diskstats.DiskstatsCollector(fakes.darwin_sources()["diskstats"])
    get = registry_of(collector).get_sample_value
    disk0 = {"device": "disk0"}
    assert get("node_disk_reads_completed_total", disk0) == 21093382
    assert get("node_disk_writes_completed_total", disk0) == 14020311
    assert get("node_disk_read_bytes_total", disk0) == 380413091840
    assert get("node_disk_written_bytes_total", disk0) == 290117877760
    assert get("node_disk_read_sectors_total", disk0) == 380413091840 / 4096
    assert get("node_disk_read_time_seconds_total", disk0) == pytest.approx(4120.331)
    assert get("node_disk_write_time_seconds_total", disk0) == pytest.approx(2910.042)
    assert get("node_disk_read_errors_total", disk0) == 0
    disk4 = {"device": "disk4"}
    assert get("node_disk_written_sectors_total", disk4) == 23118004224 / 512
    assert get("node_disk_read_errors_total", disk4) == 3
    assert get("node_disk_read_retries_total", disk4) == 12
    assert get("node_disk_write_retries_total", disk4) == 1
    assert get("node_disk_io_time_seconds_total", disk0) is None  # macOS has no busy time
    families = list(collector.collect())
    assert len(families) == 12 and all(f.type == "counter" for f in families)
    # Whole disks only: not the partition below disk0, nor the driver without media.
    assert {s.labels["device"] for f in families for s in f.samples} == {"disk0", "disk4"}


def test_darwin_os_from_system_version_plist():
    info = os_release.parse_system_version((DARWIN / "SystemVersion.plist").read_bytes())
    assert info["id"] == "macos" and info["name"] == "macOS"
    assert (info["version_id"], info["build_id"]) == ("14.5", "23F79")
    assert info["pretty_name"] == "macOS 14.5 (23F79)"
    assert info["version_codename"] == "sonoma"
    assert os_release.version_number(info["version_id"]) == 14.5


def test_darwin_memory_has_node_exporters_darwin_names():
    collector = meminfo.MeminfoCollector(fakes.darwin_sources()["meminfo"])
    families = {f.name: f for f in collector.collect()}
    assert set(families) == {
        *(
            f"node_memory_{n}_bytes"
            for n in [
                "total",
                "free",
                "active",
                "inactive",
                "wired",
                "compressed",
                "purgeable",
                "internal",
                "swap_total",
                "swap_used",
            ]
        ),
        # counters: prometheus_client keeps the name without _total on the family
        "node_memory_swapped_in_bytes",
        "node_memory_swapped_out_bytes",
    }
    registry = registry_of(collector)
    get = registry.get_sample_value
    page = 16384
    assert get("node_memory_total_bytes") == 17179869184
    assert get("node_memory_free_bytes") == (3754 + 2307) * page
    assert get("node_memory_active_bytes") == 296372 * page
    assert get("node_memory_wired_bytes") == 139571 * page
    assert get("node_memory_compressed_bytes") == 200103 * page
    assert get("node_memory_swap_used_bytes") == 3011.5 * 2**20
    assert get("node_memory_swapped_out_bytes_total") == 3476932 * page
    assert families["node_memory_swapped_in_bytes"].type == "counter"


def test_memory_pressure_level_from_sysctl():
    registry = registry_of(
        memory_pressure.MemoryPressureCollector(fakes.darwin_sources()["memory_pressure"])
    )
    assert registry.get_sample_value("minicluster_memory_pressure_level") == 2
    outcome = run_collector(memory_pressure.MemoryPressureCollector(lambda: 3))
    assert not outcome.success and "expected one of 1, 2, 4" in outcome.error


@pytest.mark.parametrize("level", [0, 1, 2, 3, 4])
def test_thermal_state(level):
    registry = registry_of(thermal.ThermalCollector(lambda: level))
    assert registry.get_sample_value("minicluster_thermal_state") == level


def test_thermal_state_out_of_range_fails_the_collector():
    assert not run_collector(thermal.ThermalCollector(lambda: 7)).success


def test_gpu_utilization_from_ioreg():
    text = (DARWIN / "ioreg-IOAccelerator.txt").read_text()
    assert gpu.parse_accelerators(text) == [0.37]
    registry = registry_of(gpu.GpuCollector(lambda: gpu.parse_accelerators(text)))
    assert registry.get_sample_value("minicluster_gpu_utilization_ratio", {"gpu": "0"}) == 0.37


def test_gpu_entries_without_statistics_are_skipped():
    entry = (DARWIN / "ioreg-IOAccelerator.txt").read_text()
    bare = '+-o IOAccelerator  <class IOAccelerator, id 0x1>\n    {\n      "IOClass" = "x"\n    }\n'
    busy = entry.replace('"Device Utilization %"=37', '"Device Utilization %"=100')
    assert gpu.parse_accelerators(entry + bare + busy) == [0.37, 1.0]
    assert gpu.parse_accelerators("") == []


def test_link_kinds_from_iokit_classes_and_interface_types():
    raw = (DARWIN / "ioreg-IONetworkInterface.plist").read_bytes()
    iokit = netclass.parse_ioreg_interfaces(raw)
    assert set(iokit) == {"en0", "en1", "en2", "en3", "en5", "en6"}
    chain, if_type = iokit["en1"]
    assert chain[0] == "IORegistryEntry" and chain[-1] == "IOSkywalkLegacyEthernetInterface"
    assert "AppleBCMWLANCore" in chain and if_type == 6
    members = {"bridge0": ["en2", "en3"], "bridge1": ["en0", "en2"]}
    types = {"lo0": 0x18, "bridge0": 0xD1, "bridge1": 0xD1, "utun0": 0x1}
    devices = [*iokit, "lo0", "bridge0", "bridge1", "utun0", "awdl0"]
    kinds = netclass.darwin_link_kinds(devices, iokit, types.get, members.__getitem__)
    assert kinds == {
        "en0": "ethernet",  # built-in, under AppleBCM5701Ethernet
        "en1": "wifi",  # its Ethernet-typed interface sits under the WLAN controller
        "en2": "thunderbolt",  # under AppleThunderboltIPPort
        "en3": "thunderbolt",
        "en5": "ethernet",  # a USB adapter, whatever its hardware port is called
        "en6": "other",  # Bluetooth PAN
        "lo0": "loopback",
        "bridge0": "thunderbolt",  # the Thunderbolt Bridge: all its members are
        "bridge1": "other",  # mixed members
        "utun0": "other",
        "awdl0": "other",  # neither in IOKit nor a known interface type
    }


def test_bridge_members_from_ifconfig():
    text = (DARWIN / "ifconfig-bridge0.txt").read_text()
    assert netclass.parse_bridge_members(text) == ["en2", "en3"]
    assert netclass.parse_bridge_members("lo0: flags=8049<UP,LOOPBACK> mtu 16384\n") == []


def test_link_kinds_are_asked_of_iokit_once_per_ttl():
    calls = []
    now = [100.0]
    raw = (DARWIN / "ioreg-IONetworkInterface.plist").read_bytes()
    kinds = netclass.DarwinKinds(
        ioreg=lambda: calls.append(1) or raw,
        if_type=lambda device: None,
        ifconfig=lambda device: "",
        clock=lambda: now[0],
    )
    assert kinds(["en0", "en1"])["en1"] == "wifi"
    kinds(["en0", "en1"])
    assert len(calls) == 1
    kinds(["en0", "en1", "en5"])  # an adapter was plugged in: asked again at once
    assert len(calls) == 2
    now[0] += netclass.KIND_TTL_SECONDS
    kinds(["en0"])
    assert len(calls) == 3


def test_darwin_netclass_publishes_kinds_and_known_speeds():
    registry = registry_of(netclass.NetclassCollector(fakes.darwin_sources()["netclass"]))
    get = registry.get_sample_value
    assert get("minicluster_network_link_info", {"device": "en1", "kind": "wifi"}) == 1
    assert get("minicluster_network_link_info", {"device": "bridge0", "kind": "thunderbolt"}) == 1
    assert get("node_network_speed_bytes", {"device": "en0"}) == 125_000_000
    assert get("node_network_speed_bytes", {"device": "bridge0"}) is None


def test_macos_readers_fail_cleanly_elsewhere():
    with pytest.raises(OSError):
        macos.sysctl_int("kern.memorystatus_vm_pressure_level")


def test_macos_only_collectors_exist_only_on_macos(tmp_path):
    options = Options(node="n", listen_host="127.0.0.1", listen_port=0, run_dir=str(tmp_path))
    linux = {c.name for c in build_collectors(options, "linux")}
    darwin = {c.name for c in build_collectors(options, "darwin", fakes.darwin_sources())}
    assert darwin - linux == {"gpu", "memory_pressure", "thermal"}
    # Readers of /proc and /sys; macOS swap traffic comes from the meminfo collector.
    assert linux - darwin == {
        *("arp", "conntrack", "entropy", "filefd", "netstat", "pressure", "sockstat"),
        *("schedstat", "selinux", "softnet", "stat", "timex", "udp_queues", "vmstat"),
    }


# Output recorded on real Macs (fixtures/darwin/recorded/sources.md says where from).

SWAPUSAGE = re.compile(r"^total = ([\d.]+)M  used = ([\d.]+)M  free = ([\d.]+)M  \(encrypted\)$")
BOOTTIME = re.compile(r"^\{ sec = \d+, usec = \d+ \} \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$")
KERN_VERSION = re.compile(
    r"^Darwin Kernel Version (\d+\.\d+\.\d+): .+; root:xnu-[\d.~]+/RELEASE_ARM64_T\d{4}$"
)
MOUNT_LINE = re.compile(r"^.+ on .+ \([^,()]+(, [^,()]+)*\)$")


def recorded_text(name: str) -> str:
    return (RECORDED / name).read_text()


def test_gpu_utilization_from_a_recorded_m1_pro():
    text = recorded_text("ioreg-IOAccelerator-m1pro.txt")
    assert gpu.parse_accelerators(text) == [0.02]
    registry = registry_of(gpu.GpuCollector(lambda: gpu.parse_accelerators(text)))
    assert registry.get_sample_value("minicluster_gpu_utilization_ratio", {"gpu": "0"}) == 0.02


def test_ioreg_is_asked_for_unclipped_lines(monkeypatch):
    """ioreg clips its lines to the width of a terminal on stdout or stdin, as when the
    exporter is started from a shell: the statistics line then loses its end."""
    text = recorded_text("ioreg-IOAccelerator-m1pro.txt")
    clipped = "\n".join(line[:120] for line in text.splitlines())
    assert gpu.parse_accelerators(clipped) == []
    calls = []
    monkeypatch.setattr(macos, "_run", lambda argv: calls.append(argv) or text)
    assert gpu.read_gpus() == [0.02]
    (argv,) = calls
    assert argv[argv.index("-w") + 1] == "0"


@pytest.mark.parametrize(
    ("plist", "name", "version", "build", "codename", "number"),
    [
        ("SystemVersion-11.3.plist", "macOS", "11.3", "20E232", "Big Sur", 11.3),
        ("SystemVersion-10.15.5.plist", "Mac OS X", "10.15.5", "19F96", "", 10.15),
    ],
)
def test_os_from_recorded_system_version_plists(plist, name, version, build, codename, number):
    source = os_release.CachedRelease((str(RECORDED / plist),), os_release.parse_system_version)
    registry = registry_of(os_release.OsCollector(source))
    info = source()
    assert (info["id"], info["name"], info["version_id"], info["build_id"]) == (
        "macos",
        name,
        version,
        build,
    )
    assert info["pretty_name"] == f"{name} {version} ({build})"
    assert info["version"] == (f"{version} ({codename})" if codename else version)
    assert info["version_codename"] == codename.lower().replace(" ", "")
    labels = {"id": "macos", "id_like": "", "name": name}
    assert registry.get_sample_value("node_os_version", labels) == number


def test_bridge_members_from_recorded_ifconfig():
    # The Thunderbolt Bridge of a Mac with four Thunderbolt ports, and the bridge that
    # Internet Sharing puts in front of a virtual machine.
    bridge0 = recorded_text("ifconfig-bridge0-mbp.txt")
    assert netclass.parse_bridge_members(bridge0) == ["en1", "en2", "en3", "en4"]
    bridge100 = recorded_text("ifconfig-bridge100-mbp.txt")
    assert netclass.parse_bridge_members(bridge100) == ["en10"]


def test_filesystems_of_a_recorded_mount_table():
    text = recorded_text("mount-macfuse.txt")
    mounts = fakes.parse_mount_text(text)
    st = SimpleNamespace(
        f_frsize=4096, f_blocks=10, f_bfree=5, f_bavail=4, f_files=8, f_ffree=2, f_flag=0
    )
    found = filesystem.read_filesystems(
        mounts=lambda: mounts, statvfs=lambda path: st, platform="darwin"
    )
    # devfs and autofs (auto_home) are skipped, as by node_exporter on macOS.
    assert [(f.device, f.fstype, f.mountpoint) for f in found] == [
        ("/dev/disk1s5s1", "apfs", "/"),
        ("/dev/disk1s4", "apfs", "/System/Volumes/VM"),
        ("/dev/disk1s2", "apfs", "/System/Volumes/Preboot"),
        ("/dev/disk1s6", "apfs", "/System/Volumes/Update"),
        ("/dev/disk1s1", "apfs", "/System/Volumes/Data"),
        ("fsapfsmount@macfuse0", "macfuse", "/Volumes/Test"),
    ]
    built = (DARWIN / "mount.txt").read_text()
    assert all(MOUNT_LINE.match(line) for line in [*text.splitlines(), *built.splitlines()])


def test_built_vm_stat_has_the_layout_of_a_recorded_apple_silicon_mac():
    real_text = recorded_text("vm_stat-apple-silicon.txt")
    real = fakes.parse_vm_stat(real_text)
    assert real["page size"] == 16384
    assert (real["Pages active"], real["Pages wired down"]) == (446206, 181483)
    assert real["Translation faults"] == 8667427138  # past 2**32
    real_lines = real_text.splitlines()
    built_lines = (DARWIN / "vm_stat.txt").read_text().splitlines()
    assert built_lines[0] == real_lines[0]
    labels = [line.split(":")[0] for line in real_lines[1:]]
    assert [line.split(":")[0] for line in built_lines[1 : len(real_lines)]] == labels
    # Values are right-aligned to the same column.
    assert {len(line) for line in [*real_lines[1:], *built_lines[1:]]} == {48}


def test_netstat_ib_reader_on_a_recorded_apple_silicon_mac():
    text = recorded_text("netstat-ib-apple-silicon.txt")
    assert text.splitlines()[0] == (DARWIN / "netstat-ib.txt").read_text().splitlines()[0]
    rows = fakes.parse_netstat_ib(text)
    # Address rows and interfaces that are down (gif0*, stf0*) are not link rows.
    assert set(rows) == {"lo0", "anpi2", "anpi1", "anpi0", "en3"}
    assert rows["lo0"] == {
        "Ipkts": 13426,
        "Ierrs": 0,
        "Ibytes": 3540480,
        "Opkts": 13426,
        "Oerrs": 0,
        "Obytes": 3540480,
        "Coll": 0,
    }
    assert rows["anpi0"]["Ibytes"] == 0


@pytest.mark.parametrize("name", ["sysctl-m2pro.txt", "sysctl-m1.txt"])
def test_built_sysctl_text_has_the_format_of_recorded_macs(name):
    real = fakes.parse_sysctl_text(recorded_text(name))
    built = fakes.FakeSysctl().text
    assert real["kern.ostype"] == built["kern.ostype"] == "Darwin"
    for values in (real, built):
        assert re.fullmatch(r"\d+\.\d+\.\d+", values["kern.osrelease"])
        assert BOOTTIME.match(values["kern.boottime"]), values["kern.boottime"]
    assert KERN_VERSION.match(real["kern.version"])[1] == real["kern.osrelease"]
    uname = fakes.sources_json("darwin")["uname"]
    assert KERN_VERSION.match(uname["version"])[1] == uname["release"] == built["kern.osrelease"]


@pytest.mark.parametrize(
    ("name", "mib"),
    [
        ("sysctl-vm.swapusage.txt", (4096.0, 2743.5, 1352.5)),
        ("sysctl-vm.swapusage-unallocated.txt", (0.0, 0.0, 0.0)),
    ],
)
def test_swapusage_text_of_recorded_macs(name, mib):
    line = fakes.parse_sysctl_text(recorded_text(name))["vm.swapusage"]
    total, used, free = (float(x) for x in SWAPUSAGE.match(line).groups())
    assert (total, used, free) == mib and total == used + free
    # The built line, which the swap struct is cross-checked against, reads the same way.
    assert SWAPUSAGE.match(fakes.FakeSysctl().text["vm.swapusage"])
