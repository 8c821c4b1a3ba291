"""Each collector on injected sources (Linux fixtures here; macOS ones in test_darwin.py)."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from types import SimpleNamespace

import psutil
import pytest
from prometheus_client import CollectorRegistry

from minicluster.exporter.collectors import (
    boottime,
    cpu,
    diskstats,
    filesystem,
    linkevents,
    loadavg,
    meminfo,
    netclass,
    netdev,
    peers,
    process,
    uname,
)
from minicluster.exporter.collectors import time as time_collector
from minicluster.exporter.collectors.peers import Peer
from minicluster.exporter.collectors.vmstat import VmstatCollector, parse_vmstat
from tests.exporter import fakes


def registry_of(collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def family_names(collector) -> set[str]:
    return {family.name for family in collector.collect()}


def test_cpu_seconds_per_cpu_and_mode_with_guest_apart():
    registry = registry_of(cpu.CpuCollector(fakes.linux_sources()["cpu"]))
    get = registry.get_sample_value
    assert get("node_cpu_seconds_total", {"cpu": "0", "mode": "user"}) == 8123.45
    assert get("node_cpu_seconds_total", {"cpu": "1", "mode": "iowait"}) == 91.6
    assert get("node_cpu_seconds_total", {"cpu": "1", "mode": "steal"}) == 2.97
    assert get("node_cpu_seconds_total", {"cpu": "0", "mode": "guest"}) is None
    assert get("node_cpu_guest_seconds_total", {"cpu": "0", "mode": "nice"}) == 0.0


def test_cpu_on_macos_has_four_modes_and_no_guest_family():
    collector = cpu.CpuCollector(fakes.darwin_sources()["cpu"])
    families = list(collector.collect())
    assert [family.name for family in families] == ["node_cpu_seconds"]
    modes = {sample.labels["mode"] for sample in families[0].samples}
    assert modes == {"user", "nice", "system", "idle"}
    assert len(families[0].samples) == 8 * 4


def test_cpu_reads_this_machine():
    registry = registry_of(cpu.CpuCollector())
    idle = registry.get_sample_value("node_cpu_seconds_total", {"cpu": "0", "mode": "idle"})
    assert idle == pytest.approx(psutil.cpu_times(percpu=True)[0].idle, abs=5)


def test_loadavg():
    registry = registry_of(loadavg.LoadavgCollector(lambda: (0.5, 1.25, 2.0)))
    assert registry.get_sample_value("node_load1") == 0.5
    assert registry.get_sample_value("node_load5") == 1.25
    assert registry.get_sample_value("node_load15") == 2.0


def test_meminfo_linux_names_and_units():
    values = meminfo.parse_meminfo(
        "MemTotal:       24684084 kB\n"
        "MemAvailable:   22044676 kB\n"
        "Active(anon):     184200 kB\n"
        "HugePages_Total:       0\n"
        "Hugepagesize:       2048 kB\n"
    )
    assert values == {
        "MemTotal_bytes": 24684084 * 1024,
        "MemAvailable_bytes": 22044676 * 1024,
        "Active_anon_bytes": 184200 * 1024,
        "HugePages_Total": 0,
        "Hugepagesize_bytes": 2048 * 1024,
    }
    registry = registry_of(meminfo.MeminfoCollector(lambda: values))
    assert registry.get_sample_value("node_memory_MemTotal_bytes") == 24684084 * 1024
    assert registry.get_sample_value("node_memory_Active_anon_bytes") == 184200 * 1024
    # HugePages_Total is a count of pages, a gauge, despite the "_Total".
    types = {f.name: f.type for f in meminfo.MeminfoCollector(lambda: values).collect()}
    assert types["node_memory_HugePages_Total"] == "gauge"


def test_meminfo_reads_this_machine():
    registry = registry_of(meminfo.MeminfoCollector())
    with open("/proc/meminfo") as f:
        total_kb = int(f.readline().split()[1])
    assert registry.get_sample_value("node_memory_MemTotal_bytes") == total_kb * 1024
    assert registry.get_sample_value("node_memory_MemAvailable_bytes") > 0


def test_filesystem_skips_pseudo_filesystems_and_reports_statvfs_errors():
    collector = filesystem.FilesystemCollector(fakes.linux_sources()["filesystem"])
    registry = registry_of(collector)
    get = registry.get_sample_value
    root = {"device": "/dev/mapper/vg-root", "fstype": "ext4", "mountpoint": "/"}
    assert get("node_filesystem_size_bytes", root) == 122030080 * 4096
    assert get("node_filesystem_free_bytes", root) == 80112640 * 4096
    assert get("node_filesystem_avail_bytes", root) == 73870336 * 4096
    assert get("node_filesystem_files", root) == 30507008
    assert get("node_filesystem_files_free", root) == 29911204
    assert get("node_filesystem_readonly", root) == 0
    efi = {"device": "/dev/nvme0n1p1", "fstype": "vfat", "mountpoint": "/boot/efi"}
    assert get("node_filesystem_readonly", efi) == 1
    nfs = {"device": "nas:/export/models", "fstype": "nfs4", "mountpoint": "/mnt/models"}
    assert get("node_filesystem_device_error", nfs) == 1
    assert get("node_filesystem_size_bytes", nfs) is None
    mountpoints = {
        sample.labels["mountpoint"]
        for family in collector.collect()
        for sample in family.samples
        if family.name == "node_filesystem_size_bytes"
    }
    # /proc, /sys, /dev and docker's overlay are skipped; the duplicate / is listed once.
    assert mountpoints == {"/", "/run", "/boot/efi"}
    sizes = next(f for f in collector.collect() if f.name == "node_filesystem_size_bytes")
    assert len(sizes.samples) == 3


def test_filesystem_reads_this_machine():
    registry = registry_of(filesystem.FilesystemCollector())
    root = next(p for p in psutil.disk_partitions(all=True) if p.mountpoint == "/")
    labels = {"device": root.device, "fstype": root.fstype, "mountpoint": "/"}
    st = os.statvfs("/")
    assert registry.get_sample_value("node_filesystem_size_bytes", labels) == (
        st.f_blocks * st.f_frsize
    )


def test_diskstats_every_column_of_whole_disks():
    collector = diskstats.DiskstatsCollector(fakes.linux_sources()["diskstats"])
    registry = registry_of(collector)
    get = registry.get_sample_value
    nvme = {"device": "nvme0n1"}
    assert get("node_disk_reads_completed_total", nvme) == 1203345
    assert get("node_disk_reads_merged_total", nvme) == 2201
    assert get("node_disk_read_bytes_total", nvme) == 78538440 * 512
    assert get("node_disk_read_time_seconds_total", nvme) == pytest.approx(402.311)
    assert get("node_disk_writes_completed_total", nvme) == 2990371
    assert get("node_disk_writes_merged_total", nvme) == 88012
    assert get("node_disk_written_bytes_total", nvme) == 177934440 * 512
    assert get("node_disk_write_time_seconds_total", nvme) == pytest.approx(2210.993)
    assert get("node_disk_io_now", nvme) == 3
    assert get("node_disk_io_time_seconds_total", nvme) == pytest.approx(1100.452)
    assert get("node_disk_io_time_weighted_seconds_total", nvme) == pytest.approx(2613.304)
    assert get("node_disk_discards_completed_total", nvme) == 54995
    assert get("node_disk_discards_merged_total", nvme) == 41
    assert get("node_disk_discarded_sectors_total", nvme) == 4297384
    assert get("node_disk_discard_time_seconds_total", nvme) == pytest.approx(3.146)
    assert get("node_disk_flush_requests_total", nvme) == 2120
    assert get("node_disk_flush_requests_time_seconds_total", nvme) == pytest.approx(0.077)
    info = {
        "device": "nvme0n1",
        "major": "259",
        "minor": "0",
        "path": "pci-0000:01:00.0-nvme-1",
        "wwn": "eui.002538b811b21234",
        "model": "Samsung SSD 980 PRO 1TB",
        "serial": "S5GXNF0R812345A",
        "revision": "5B2QGXA7",
    }
    assert get("node_disk_info", info) == 1
    # A kernel before 4.18 has no discard columns: those series are absent, not zero.
    assert get("node_disk_reads_completed_total", {"device": "sda"}) == 50211
    assert get("node_disk_discards_completed_total", {"device": "sda"}) is None
    devices = {s.labels["device"] for f in collector.collect() for s in f.samples}
    # Partitions, loop and zram devices are skipped, as current node_exporter does.
    assert devices == {"nvme0n1", "dm-0", "sda"}


def test_netdev_follows_every_change_and_hands_back_what_held_still():
    counters = {
        "eth0": {"receive_bytes": 100, "receive_errs": 0},
        "lo": {"receive_bytes": 7, "receive_errs": 0},
    }
    collector = netdev.NetdevCollector(lambda: {d: dict(f) for d, f in counters.items()})
    first = {family.name: family for family in collector.collect()}
    counters["eth0"]["receive_bytes"] = 250
    second = {family.name: family for family in collector.collect()}
    errs, received = "node_network_receive_errs", "node_network_receive_bytes"
    assert second[errs] is first[errs]  # held still on every device
    assert {s.labels["device"]: s.value for s in second[received].samples} == {
        "eth0": 250,
        "lo": 7,
    }
    assert {s.labels["device"]: s.value for s in first[received].samples}["eth0"] == 100
    counters["wlan0"] = {"receive_bytes": 1, "receive_errs": 0}  # a device that appeared
    third = {family.name: family for family in collector.collect()}
    assert third[errs] is not second[errs]
    assert [s.labels["device"] for s in third[errs].samples] == ["eth0", "lo", "wlan0"]
    del counters["lo"]  # and one that went away
    fourth = {family.name: family for family in collector.collect()}
    assert [s.labels["device"] for s in fourth[errs].samples] == ["eth0", "wlan0"]


def test_netdev_linux_every_column():
    registry = registry_of(netdev.NetdevCollector(fakes.linux_sources()["netdev"]))
    get = registry.get_sample_value
    eth0 = {"device": "eth0"}
    expected = {
        "receive_bytes": 4398046511104,
        "receive_packets": 2980051777,
        "receive_errs": 2,
        "receive_drop": 1041,
        "receive_fifo": 0,
        "receive_frame": 1,
        "receive_compressed": 0,
        "receive_multicast": 18234,
        "receive_nohandler": 7,
        "transmit_bytes": 5368709120000,
        "transmit_packets": 3621048533,
        "transmit_errs": 0,
        "transmit_drop": 0,
        "transmit_fifo": 0,
        "transmit_colls": 0,
        "transmit_carrier": 3,
        "transmit_compressed": 0,
    }
    for field, value in expected.items():
        assert get(f"node_network_{field}_total", eth0) == value, field
    assert get("node_network_transmit_drop_total", {"device": "thunderbolt0"}) == 2
    # No sysfs entry for the device: no nohandler series rather than a made-up zero.
    assert get("node_network_receive_nohandler_total", {"device": "thunderbolt0"}) is None


def test_netdev_reads_this_machine_loopback():
    registry = registry_of(netdev.NetdevCollector())
    before = registry.get_sample_value("node_network_receive_bytes_total", {"device": "lo"})
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()) as client,
    ):
        peer, _ = server.accept()
        client.sendall(b"x" * 100_000)
        received = 0
        while received < 100_000:
            received += len(peer.recv(65536))
        peer.close()
    after = registry.get_sample_value("node_network_receive_bytes_total", {"device": "lo"})
    assert after - before >= 100_000


def test_netclass_sysfs_attributes_state_speed_and_link_kind():
    collector = netclass.NetclassCollector(fakes.linux_sources()["netclass"])
    registry = registry_of(collector)
    get = registry.get_sample_value
    assert get("node_network_up", {"device": "eth0"}) == 1
    assert get("node_network_up", {"device": "wlan0"}) == 0  # operstate down
    assert get("node_network_up", {"device": "lo"}) == 0  # operstate "unknown", as upstream
    assert get("node_network_mtu_bytes", {"device": "thunderbolt0"}) == 65520
    assert get("node_network_speed_bytes", {"device": "eth0"}) == 10_000 * 1_000_000 / 8
    assert get("node_network_speed_bytes", {"device": "wlan0"}) is None  # unknown: absent
    assert get("node_network_flags", {"device": "eth0"}) == 0x1003  # hex in sysfs
    assert get("node_network_iface_id", {"device": "eth0"}) == 4
    assert get("node_network_carrier", {"device": "wlan0"}) == 0
    assert get("node_network_carrier_changes_total", {"device": "eth0"}) is not None
    assert get("node_network_protocol_type", {"device": "lo"}) == 772
    info = {
        "device": "thunderbolt0",
        "address": "02:5f:d4:11:22:33",
        "broadcast": "ff:ff:ff:ff:ff:ff",
        "duplex": "",
        "ifalias": "training link",
        "operstate": "up",
    }
    assert get("node_network_info", info) == 1
    # bonding_masters sits beside the devices and is not one.
    devices = {s.labels["device"] for f in collector.collect() for s in f.samples}
    assert devices == {"eth0", "lo", "thunderbolt0", "wlan0"}
    for device, kind in [
        ("eth0", "ethernet"),
        ("wlan0", "wifi"),
        ("thunderbolt0", "thunderbolt"),
        ("lo", "loopback"),
    ]:
        assert get("minicluster_network_link_info", {"device": device, "kind": kind}) == 1


def test_netclass_reads_fixed_attributes_once_per_device(tmp_path):
    root = tmp_path / "net"
    base = root / "veth0"
    base.mkdir(parents=True)
    for name, value in [("ifindex", "7"), ("operstate", "up"), ("mtu", "1500"), ("type", "1")]:
        (base / name).write_text(value + "\n")
    links = netclass.SysfsLinks(str(root))
    first = links(lambda device: "other")[0]
    assert (first.attributes["iface_id"], first.attributes["mtu_bytes"]) == (7, 1500)
    (base / "ifindex").write_text("8\n")  # not re-read while the device lives
    (base / "mtu").write_text("9000\n")  # re-read at every scrape
    again = links(lambda device: "other")[0]
    assert (again.attributes["iface_id"], again.attributes["mtu_bytes"]) == (7, 9000)
    # Deleted and created again under the same name: a new entry, read afresh. (Made
    # beside the old one, so the file system cannot hand it the old inode number.)
    replacement = root / "veth0.new"
    replacement.mkdir()
    for name, value in [("ifindex", "9"), ("operstate", "down"), ("mtu", "1500")]:
        (replacement / name).write_text(value + "\n")
    for path in base.iterdir():
        path.unlink()
    base.rmdir()
    replacement.rename(base)
    fresh = {link.device: link for link in links(lambda device: "other")}["veth0"]
    assert fresh.attributes["iface_id"] == 9 and not fresh.up


def _sysfs_device(root, name, arp_type, *, physical=False, wireless=False, driver=None):
    base = root / name
    base.mkdir(parents=True)
    (base / "type").write_text(f"{arp_type}\n")
    if physical or driver:
        (base / "device").mkdir()
    if wireless:
        (base / "wireless").mkdir()
    if driver:
        target = root.parent / "drivers" / driver
        target.mkdir(parents=True, exist_ok=True)
        (base / "device" / "driver").symlink_to(target)


def test_linux_link_kind_from_sysfs(tmp_path):
    root = tmp_path / "sys" / "class" / "net"
    _sysfs_device(root, "lo", 772)
    _sysfs_device(root, "enp3s0", 1, physical=True)
    _sysfs_device(root, "wlp2s0", 1, physical=True, wireless=True)
    _sysfs_device(root, "thunderbolt0", 1, driver="thunderbolt-net")
    _sysfs_device(root, "veth1234", 1)
    _sysfs_device(root, "wg0", 65534)
    kinds = {path.name: netclass.linux_link_kind(path.name, str(root)) for path in root.iterdir()}
    assert kinds == {
        "lo": "loopback",
        "enp3s0": "ethernet",
        "wlp2s0": "wifi",
        "thunderbolt0": "thunderbolt",
        "veth1234": "other",
        "wg0": "other",
    }
    assert netclass.linux_link_kind("gone0", str(root)) == "other"


def test_link_kinds_are_cached_for_a_while():
    calls = []
    now = [0.0]
    kinds = netclass.CachedKinds(lambda device: calls.append(device) or "ethernet", lambda: now[0])
    assert kinds("eth0") == kinds("eth0") == "ethernet"
    assert calls == ["eth0"]
    now[0] += netclass.KIND_TTL_SECONDS
    kinds("eth0")
    assert calls == ["eth0", "eth0"]


def test_link_kind_cache_is_bounded():
    kinds = netclass.CachedKinds(lambda device: "other")
    for i in range(netclass.MAX_CACHED_KINDS + 10):
        kinds(f"veth{i}")
    assert len(kinds.kinds) <= netclass.MAX_CACHED_KINDS


def test_netclass_reads_this_machine():
    registry = registry_of(netclass.NetclassCollector())
    assert registry.get_sample_value("node_network_mtu_bytes", {"device": "lo"}) == 65536
    info = {"device": "lo", "kind": "loopback"}
    assert registry.get_sample_value("minicluster_network_link_info", info) == 1


def test_boot_time_clock_and_uname():
    assert (
        registry_of(boottime.BoottimeCollector(lambda: 1732780811.0)).get_sample_value(
            "node_boot_time_seconds"
        )
        == 1732780811.0
    )
    registry = registry_of(time_collector.TimeCollector())
    assert registry.get_sample_value("node_time_seconds") == pytest.approx(time.time(), abs=5)
    zone = time.localtime()
    offset = registry.get_sample_value("node_time_zone_offset_seconds", {"time_zone": zone.tm_zone})
    assert offset == zone.tm_gmtoff
    clock = time_collector.read_clock()
    for device, (available, current) in clock.clocksources.items():
        assert current in available
        assert (
            registry.get_sample_value(
                "node_time_clocksource_current_info", {"clocksource": current, "device": device}
            )
            == 1
        )
    registry = registry_of(uname.UnameCollector(fakes.linux_sources()["uname"]))
    labels = dict(fakes.sources_json("linux")["uname"])
    assert registry.get_sample_value("node_uname_info", labels) == 1
    live = uname.read_uname()
    assert live["sysname"] == os.uname().sysname and live["nodename"] == os.uname().nodename


def test_boot_time_reads_this_machine():
    value = registry_of(boottime.BoottimeCollector()).get_sample_value("node_boot_time_seconds")
    with open("/proc/stat") as f:
        btime = next(int(line.split()[1]) for line in f if line.startswith("btime"))
    assert value == pytest.approx(btime, abs=1)


def test_process_metrics_of_this_process_come_from_psutil():
    registry = registry_of(process.ProcessCollector())
    get = registry.get_sample_value
    me = psutil.Process()
    assert get("process_resident_memory_bytes") == pytest.approx(me.memory_info().rss, rel=0.5)
    assert get("process_start_time_seconds") == pytest.approx(me.create_time(), abs=0.01)
    assert get("process_open_fds") >= 3
    assert get("process_max_fds") >= get("process_open_fds")
    assert get("process_cpu_seconds_total") > 0


def test_open_descriptors_are_counted_exactly_with_and_without_the_kernels_count(monkeypatch):
    before = process.open_fd_count()
    assert before == len(os.listdir("/proc/self/fd")) - 1  # less the listing's own
    files = [os.open("/dev/null", os.O_RDONLY) for _ in range(20)]
    try:
        assert process.open_fd_count() == before + 20
        # A kernel before 6.2 gives 0 as the directory's size: the listing is counted.
        monkeypatch.setattr(process.os, "stat", lambda path: SimpleNamespace(st_size=0))
        assert process.open_fd_count() == before + 20
    finally:
        for fd in files:
            os.close(fd)


def test_process_metrics_from_a_fake_process():
    fake = SimpleNamespace(
        oneshot=contextlib.nullcontext,
        cpu_times=lambda: SimpleNamespace(user=1.5, system=0.25),
        memory_info=lambda: SimpleNamespace(rss=41943040, vms=411041792),
        num_fds=lambda: 9,
        create_time=lambda: 1732799000.5,
    )
    registry = registry_of(process.ProcessCollector(process.ProcessReader(fake)))
    assert registry.get_sample_value("process_cpu_seconds_total") == 1.75
    assert registry.get_sample_value("process_resident_memory_bytes") == 41943040
    assert registry.get_sample_value("process_virtual_memory_bytes") == 411041792
    assert registry.get_sample_value("process_open_fds") == 9
    assert registry.get_sample_value("process_start_time_seconds") == 1732799000.5


def test_peers_collector_publishes_rtt_only_for_peers_that_answered():
    registry = registry_of(peers.PeersCollector(lambda: {"mini-yellow": 0.0004, "mini-blue": None}))
    get = registry.get_sample_value
    assert get("minicluster_peer_up", {"peer": "mini-yellow"}) == 1
    assert get("minicluster_peer_rtt_seconds", {"peer": "mini-yellow"}) == 0.0004
    assert get("minicluster_peer_up", {"peer": "mini-blue"}) == 0
    assert get("minicluster_peer_rtt_seconds", {"peer": "mini-blue"}) is None


def test_peers_collector_without_peers_publishes_nothing():
    assert list(peers.PeersCollector().collect()) == []


@pytest.fixture
def blackhole():
    """A loopback port that drops SYNs: a listener whose accept queue is full."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    # With the queue full the kernel drops further SYNs, so connect() just waits.
    for _ in range(4):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(server.getsockname())
        fillers.append(sock)
    time.sleep(0.05)
    yield server.getsockname()[1]
    for sock in fillers:
        sock.close()
    server.close()


def test_peer_probe_is_concurrent_and_bounded(blackhole):
    with socket.create_server(("127.0.0.1", 0)) as listening:
        up_port = listening.getsockname()[1]
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            refused_port = unused.getsockname()[1]  # bound, not listening: RST
        targets = [
            Peer("up", "127.0.0.1", up_port),
            Peer("refused", "127.0.0.1", refused_port),
            *(Peer(f"silent-{i}", "127.0.0.1", blackhole) for i in range(3)),
        ]
        started = time.perf_counter()
        result = peers.probe_peers(targets, timeout=0.4)
        elapsed = time.perf_counter() - started
    assert 0 < result["up"] < 0.4
    assert result["refused"] is None
    assert [result[f"silent-{i}"] for i in range(3)] == [None, None, None]
    # The silent peers waited out the timeout together: one after the other takes 1.2 s.
    assert 0.35 < elapsed < 1.0


def test_a_node_without_peers_probes_nothing_and_publishes_nothing():
    assert peers.probe_peers([], timeout=0.4) == {}
    registry = registry_of(peers.PeersCollector(lambda: peers.probe_peers([], 0.4)))
    assert [m for m in registry.collect() if m.name.startswith("minicluster_peer")] == []


def test_vmstat_publishes_node_exporters_default_fields_only():
    text = (fakes.LINUX / "vmstat").read_text()
    registry = CollectorRegistry()
    registry.register(VmstatCollector(lambda: parse_vmstat(text)))
    assert registry.get_sample_value("node_vmstat_pswpin") == 1843
    assert registry.get_sample_value("node_vmstat_pswpout") == 9312
    assert registry.get_sample_value("node_vmstat_pgmajfault") == 18201
    assert registry.get_sample_value("node_vmstat_oom_kill") == 2
    # Outside node_exporter's default field set.
    assert registry.get_sample_value("node_vmstat_nr_free_pages") is None
    assert registry.get_sample_value("node_vmstat_thp_fault_alloc") is None


class ScriptedEvents:
    """A LinkEvents whose answers the test sets."""

    def __init__(self) -> None:
        self.pending = True

    def changed(self) -> bool:
        changed, self.pending = self.pending, False
        return changed


def _cached_links(tmp_path, now, same_namespace=True):
    root = tmp_path / "net"
    base = root / "veth0"
    base.mkdir(parents=True)
    for name, value in [("ifindex", "7"), ("operstate", "up"), ("mtu", "1500")]:
        (base / name).write_text(value + "\n")
    events = ScriptedEvents()
    links = netclass.SysfsLinks(
        str(root), events=events, clock=lambda: now[0], same_namespace=lambda _: same_namespace
    )
    return root, events, links


def test_netclass_serves_its_last_read_until_a_link_change_is_announced(tmp_path):
    now = [0.0]
    root, events, links = _cached_links(tmp_path, now)
    first = links(lambda device: "other")
    assert first[0].attributes["mtu_bytes"] == 1500
    (root / "veth0" / "mtu").write_text("9000\n")
    assert links(lambda device: "other") is first  # no announcement: not read again
    events.pending = True  # the kernel announced a change (RTM_NEWLINK)
    again = links(lambda device: "other")
    assert again is not first and again[0].attributes["mtu_bytes"] == 9000
    (root / "veth0" / "operstate").write_text("down\n")
    now[0] += netclass.REFRESH_SECONDS  # the backstop: read again after a while anyway
    assert links(lambda device: "other")[0].up is False


def test_netclass_reads_again_when_the_device_listing_changes(tmp_path):
    root, _, links = _cached_links(tmp_path, [0.0])
    first = links(lambda device: "other")
    (root / "veth1").mkdir()
    for name, value in [("ifindex", "8"), ("operstate", "up")]:
        (root / "veth1" / name).write_text(value + "\n")
    (root / "veth0" / "mtu").write_text("9000\n")
    again = {link.device: link for link in links(lambda device: "other")}
    assert set(again) == {"veth0", "veth1"} and again["veth0"].attributes["mtu_bytes"] == 9000
    assert first[0].attributes["mtu_bytes"] == 1500  # what was served is not changed


def test_netclass_reads_every_time_in_another_namespace_or_without_events(tmp_path):
    root, _, links = _cached_links(tmp_path, [0.0], same_namespace=False)
    links(lambda device: "other")
    (root / "veth0" / "mtu").write_text("9000\n")
    assert links(lambda device: "other")[0].attributes["mtu_bytes"] == 9000
    plain = netclass.SysfsLinks(str(root))  # no events: every scrape reads
    plain(lambda device: "other")
    (root / "veth0" / "mtu").write_text("1280\n")
    assert plain(lambda device: "other")[0].attributes["mtu_bytes"] == 1280


def test_netclass_cached_links_follow_a_new_link_kind(tmp_path):
    _, _, links = _cached_links(tmp_path, [0.0])
    first = links(lambda device: "other")
    kind = links(lambda device: "ethernet")
    assert kind is not first and kind[0].kind == "ethernet"
    assert kind[0].attributes == first[0].attributes


def test_netclass_reuses_its_families_only_for_the_same_links():
    link = netclass.Link("eth0", True, "ethernet", attributes={"mtu_bytes": 1500})
    served = [[link]]
    collector = netclass.NetclassCollector(lambda: served[0])
    first = list(collector.collect())
    assert all(a is b for a, b in zip(first, collector.collect(), strict=True))
    served[0] = [netclass.Link("eth0", True, "ethernet", attributes={"mtu_bytes": 9000})]
    registry = registry_of(collector)
    assert registry.get_sample_value("node_network_mtu_bytes", {"device": "eth0"}) == 9000


def test_link_events_count_anything_uncertain_as_a_change():
    events = linkevents.LinkEvents()
    if not events.watching:
        pytest.fail("no netlink route socket on this Linux host")
    try:
        assert events.changed()  # the first look: nothing is known yet
        answers: list = []

        class FakeSocket:
            def recv(self, size):
                answer = answers.pop(0) if answers else BlockingIOError()
                if isinstance(answer, BaseException):
                    raise answer
                return answer

            def close(self):
                pass

        events.sock.close()
        events.sock = FakeSocket()
        assert not events.changed()  # nothing queued
        answers[:] = [b"\x00" * 32]
        assert events.changed()  # a link message
        answers[:] = [OSError(errno.ENOBUFS, "overflow")]
        assert events.changed()  # messages were lost
        answers[:] = [OSError(errno.EIO, "other")]
        assert events.changed()
        assert not events.changed()
        events.sock = None  # could not be opened: every scrape reads
        assert events.changed() and events.changed()
    finally:
        events.close()
