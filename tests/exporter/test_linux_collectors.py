"""node_exporter's /proc and /sys collectors, on fixture text recorded from a Linux host.

Each reader is a pure parser of the kernel's text; the fixtures are that text as the
kernel printed it (tests/exporter/fixtures/linux/), so these tests pin the numbers a
dashboard shows. A source the host lacks must mean no series and success 1.
"""

from __future__ import annotations

import errno
import os

import pytest
from prometheus_client import CollectorRegistry

from minicluster.exporter.collectors import (
    arp,
    boottime,
    conntrack,
    cpu,
    entropy,
    filefd,
    heldfiles,
    netstat,
    os_release,
    pressure,
    schedstat,
    selinux,
    sockstat,
    softnet,
    stat,
    timex,
    udp_queues,
)
from minicluster.exporter.collectors.base import read_optional
from minicluster.exporter.scrape import ScrapeGuard, run_collector
from tests.exporter import fakes
from tests.exporter.fakes import LINUX, linux_text


def registry_of(collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def source(name: str):
    return fakes.linux_sources()[name]


def test_stat_counts_interrupts_context_switches_forks_and_procs():
    get = registry_of(stat.StatCollector(source("stat"))).get_sample_value
    assert get("node_intr_total") == 860664  # the first number: the sum of all lines
    assert get("node_context_switches_total") == 1605774
    assert get("node_forks_total") == 25857
    assert get("node_procs_running") == 5
    assert get("node_procs_blocked") == 0
    assert get("node_boot_time_seconds") is None  # the boottime collector's


def test_pressure_some_is_waiting_and_full_is_stalled_in_seconds():
    get = registry_of(pressure.PressureCollector(source("pressure"))).get_sample_value
    assert get("node_pressure_cpu_waiting_seconds_total") == pytest.approx(134.52159)
    assert get("node_pressure_cpu_stalled_seconds_total") == 0
    assert get("node_pressure_io_waiting_seconds_total") == pytest.approx(7.012275)
    assert get("node_pressure_io_stalled_seconds_total") == pytest.approx(5.102759)
    assert get("node_pressure_memory_stalled_seconds_total") == 0


def test_pressure_without_psi_is_no_series_and_success(tmp_path, monkeypatch):
    absent = pressure.PressureCollector(lambda: pressure.read_pressure(str(tmp_path / "none")))
    outcome = run_collector(absent)
    assert outcome.success and outcome.families == []

    real_pread = os.pread

    def refused(fd, *args):  # booted with psi=0: the files exist, reading fails
        if os.readlink(f"/proc/self/fd/{fd}") == "/proc/pressure/cpu":
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return real_pread(fd, *args)

    monkeypatch.setattr(heldfiles, "FILES", heldfiles.HeldFiles())
    monkeypatch.setattr(heldfiles.os, "pread", refused)
    assert read_optional("/proc/pressure/cpu") is None
    assert read_optional("/proc/pressure/cpu") is None  # through the held descriptor too


def test_netstat_default_fields_only_untyped():
    collector = netstat.NetstatCollector(source("netstat"))
    families = {f.name: f for f in collector.collect()}
    assert all(f.type == "unknown" for f in families.values())
    get = registry_of(collector).get_sample_value
    assert get("node_netstat_Tcp_CurrEstab") == 12
    assert get("node_netstat_Tcp_InSegs") == 152363
    assert get("node_netstat_Tcp_RetransSegs") == 81
    assert get("node_netstat_Ip_Forwarding") == 2
    assert get("node_netstat_IpExt_InOctets") == 6183178784
    assert get("node_netstat_Udp_InDatagrams") == 264
    assert get("node_netstat_Icmp_InMsgs") == 1
    assert get("node_netstat_TcpExt_SyncookiesSent") == 0
    assert get("node_netstat_Ip6_InOctets") is not None  # from snmp6
    assert get("node_netstat_Udp6_InDatagrams") is not None
    # Outside node_exporter's default set.
    assert get("node_netstat_Tcp_RtoMin") is None
    assert get("node_netstat_IpExt_InMcastPkts") is None
    assert not any(name.startswith("node_netstat_MPTcpExt") for name in families)


def test_sockstat_counts_and_memory_in_pages_and_bytes():
    get = registry_of(sockstat.SockstatCollector(source("sockstat"))).get_sample_value
    assert get("node_sockstat_sockets_used") == 33
    assert get("node_sockstat_TCP_inuse") == 5
    assert get("node_sockstat_TCP_tw") == 34
    assert get("node_sockstat_TCP_alloc") == 19
    assert get("node_sockstat_TCP_mem") == 110
    assert get("node_sockstat_TCP_mem_bytes") == 110 * 4096
    assert get("node_sockstat_TCP6_inuse") == 12
    assert get("node_sockstat_FRAG6_memory") == 0


def test_filefd_allocated_and_maximum():
    get = registry_of(filefd.FilefdCollector(source("filefd"))).get_sample_value
    assert get("node_filefd_allocated") == 4128
    assert get("node_filefd_maximum") == float(2**63 - 1)  # as a float, like node_exporter


def test_conntrack_table_and_per_cpu_stats_summed():
    get = registry_of(conntrack.ConntrackCollector(source("conntrack"))).get_sample_value
    assert get("node_nf_conntrack_entries") == 33
    assert get("node_nf_conntrack_entries_limit") == 262144
    assert get("node_nf_conntrack_stat_found") == 3 + 2
    assert get("node_nf_conntrack_stat_invalid") == 0x1F + 0x10
    assert get("node_nf_conntrack_stat_ignore") == 0x4D2 + 0x100
    assert get("node_nf_conntrack_stat_insert_failed") == 1
    assert get("node_nf_conntrack_stat_drop") == 3
    assert get("node_nf_conntrack_stat_search_restart") == 5
    assert get("node_nf_conntrack_stat_early_drop") == 0


def test_conntrack_without_the_module_is_no_series_and_success(monkeypatch):
    monkeypatch.setattr(conntrack, "COUNT", "/proc/sys/net/netfilter/no_such_file")
    outcome = run_collector(conntrack.ConntrackCollector())
    assert outcome.success and outcome.families == []


def test_softnet_per_cpu_by_the_kernels_cpu_index():
    get = registry_of(softnet.SoftnetCollector(source("softnet"))).get_sample_value
    assert get("node_softnet_processed_total", {"cpu": "0"}) == 0xE909
    assert get("node_softnet_processed_total", {"cpu": "1"}) == 0x1AB22
    assert get("node_softnet_times_squeezed_total", {"cpu": "1"}) == 1
    assert get("node_softnet_dropped_total", {"cpu": "0"}) == 0
    assert get("node_softnet_backlog_len", {"cpu": "1"}) == 0
    # Column 13 names the CPU: with CPU 1 offline, the second line is CPU 2.
    line = "00000010 00000000 00000000 " + "00000000 " * 9 + "00000002"
    assert set(softnet.parse_softnet(f"{'0' * 8} " * 12 + "00000000\n" + line)) == {"0", "2"}
    # Kernels before 5.10 have no such column: the line number is the CPU.
    assert set(softnet.parse_softnet("00000001 00000000 00000000\n" * 2)) == {"0", "1"}


def test_entropy_bits():
    get = registry_of(entropy.EntropyCollector(source("entropy"))).get_sample_value
    assert get("node_entropy_available_bits") == 256
    assert get("node_entropy_pool_size_bits") == 256


def test_timex_decodes_nanosecond_offsets_and_ppm_frequency():
    get = registry_of(timex.TimexCollector(source("timex"))).get_sample_value
    assert get("node_timex_sync_status") == 1
    assert get("node_timex_offset_seconds") == pytest.approx(-48213e-9)  # STA_NANO set
    assert get("node_timex_frequency_adjustment_ratio") == pytest.approx(1 - 1145993 / 65536e6)
    assert get("node_timex_maxerror_seconds") == pytest.approx(0.007011)
    assert get("node_timex_estimated_error_seconds") == pytest.approx(0.00012)
    assert get("node_timex_status") == 8193
    assert get("node_timex_loop_time_constant") == 7
    assert get("node_timex_tick_seconds") == pytest.approx(0.01)
    assert get("node_timex_tai_offset_seconds") == 37
    assert get("node_timex_pps_calibration_total") == 0
    unsynced = timex.decode(dict(fakes.sources_json("linux")["timex"]["fields"]), timex.TIME_ERROR)
    assert unsynced["sync_status"] == 0


def test_timex_reads_this_machines_clock():
    import ctypes

    assert ctypes.sizeof(timex.Timex) == (208 if ctypes.sizeof(ctypes.c_long) == 8 else 128)
    fields, state = timex.read_adjtimex()
    assert 0 <= state <= 5
    assert 9000 <= fields["tick"] <= 11000  # USER_HZ 100: 10000 µs per tick, give or take
    assert run_collector(timex.TimexCollector()).success


def test_udp_queues_summed_per_ip_version():
    get = registry_of(udp_queues.UdpQueuesCollector(source("udp_queues"))).get_sample_value
    assert get("node_udp_queues", {"ip": "v4", "queue": "tx"}) == 0x200
    assert get("node_udp_queues", {"ip": "v4", "queue": "rx"}) == 0x1100
    assert get("node_udp_queues", {"ip": "v6", "queue": "tx"}) == 0
    assert get("node_udp_queues", {"ip": "v6", "queue": "rx"}) == 0x340


def test_arp_entries_per_device():
    get = registry_of(arp.ArpCollector(source("arp"))).get_sample_value
    assert get("node_arp_entries", {"device": "eth0"}) == 2
    assert get("node_arp_entries", {"device": "thunderbolt0"}) == 1
    assert arp.parse_arp(linux_text("net-arp").splitlines()[0]) == {}


def test_schedstat_seconds_and_timeslices_per_cpu():
    get = registry_of(schedstat.SchedstatCollector(source("schedstat"))).get_sample_value
    assert get("node_schedstat_running_seconds_total", {"cpu": "0"}) == pytest.approx(
        2045936.778163039
    )
    assert get("node_schedstat_waiting_seconds_total", {"cpu": "1"}) == pytest.approx(
        343796.328169361
    )
    assert get("node_schedstat_timeslices_total", {"cpu": "0"}) == 4767485306
    assert list(schedstat.SchedstatCollector(lambda: {}).collect()) == []


def test_selinux_modes_and_off():
    get = registry_of(selinux.SelinuxCollector(source("selinux"))).get_sample_value
    assert get("node_selinux_enabled") == 1
    assert get("node_selinux_config_mode") == 1
    assert get("node_selinux_current_mode") == 1
    off = registry_of(selinux.SelinuxCollector(lambda: selinux.Selinux(False)))
    assert off.get_sample_value("node_selinux_enabled") == 0
    assert off.get_sample_value("node_selinux_current_mode") is None
    assert selinux.parse_config_mode("# comment\nSELINUX=permissive\n") == 0
    assert selinux.parse_config_mode(None) == -1


def test_os_release_labels_and_version():
    collector = os_release.OsCollector(source("os"))
    get = registry_of(collector).get_sample_value
    info = dict.fromkeys(os_release.INFO_LABELS, "")
    info.update(
        id="debian",
        name="Debian GNU/Linux",
        pretty_name="Debian GNU/Linux 12 (bookworm)",
        version="12 (bookworm)",
        version_codename="bookworm",
        version_id="12",
    )
    assert get("node_os_info", info) == 1
    assert get("node_os_version", {"id": "debian", "id_like": "", "name": "Debian GNU/Linux"}) == 12
    assert os_release.version_number("22.04") == 22.04
    assert os_release.version_number("rolling") == 0
    quoted = os_release.parse_os_release("NAME='Ubuntu'\nID_LIKE=\"debian\"\n# x=y\n")
    assert (quoted["name"], quoted["id_like"]) == ("Ubuntu", "debian")


def test_os_release_is_parsed_again_only_when_it_changes(tmp_path):
    path = tmp_path / "os-release"
    path.write_text('ID=debian\nVERSION_ID="12"\n')
    calls = []

    def parse(raw: bytes) -> dict[str, str]:
        calls.append(raw)
        return os_release.parse_os_release(raw.decode())

    cached = os_release.CachedRelease((str(tmp_path / "missing"), str(path)), parse)
    assert cached()["version_id"] == "12"
    assert cached()["version_id"] == "12"
    assert len(calls) == 1
    path.write_text('ID=debian\nVERSION_ID="13"\n')
    os.utime(path, ns=(1, 2_000_000_000))  # a different mtime, as an upgrade gives
    assert cached()["version_id"] == "13"
    assert len(calls) == 2
    assert os_release.CachedRelease((str(tmp_path / "none"),), parse)() == {}


def test_every_fixture_is_kernel_text():
    # Guard against a fixture silently emptied: each parser must find something.
    assert stat.parse_stat(linux_text("stat"))
    assert pressure.read_pressure(str(LINUX / "pressure"))
    assert netstat.parse_snmp6(linux_text("net-snmp6"))


def test_proc_stat_is_read_once_per_collection_by_cpu_stat_and_boottime(monkeypatch):
    opened = []

    class Counting(heldfiles.HeldFiles):
        def read_bytes(self, path: str) -> bytes:
            if path == "/proc/stat":
                opened.append(path)
            return super().read_bytes(path)

    monkeypatch.setattr(heldfiles, "FILES", Counting())
    collectors = [cpu.CpuCollector(), stat.StatCollector(), boottime.BoottimeCollector()]
    guard = ScrapeGuard(collectors, timeout_seconds=5)
    families = {f.name: f for f in guard.scrape()}
    assert opened == ["/proc/stat"]
    assert {"node_cpu_seconds", "node_intr", "node_boot_time_seconds"} <= set(families)
    guard.scrape()
    assert len(opened) == 2  # the next scrape reads it afresh


def test_cpu_labels_are_the_kernels_cpu_numbers():
    text = "cpu  10 0 5 100 0 0 0 0 0 0\ncpu0 5 0 2 50 0 0 0 0 0 0\ncpu2 5 0 3 50 1 0 0 0 0 0\n"
    cpus = cpu.parse_proc_stat_cpus(text, ticks=100)
    assert set(cpus) == {"0", "2"}  # CPU 1 offline: a gap, as node_exporter shows it
    assert cpus["2"]["system"] == 0.03 and cpus["2"]["iowait"] == 0.01
    get = registry_of(cpu.CpuCollector(lambda: cpus)).get_sample_value
    assert get("node_cpu_seconds_total", {"cpu": "2", "mode": "idle"}) == 0.5
    assert boottime.parse_btime("cpu  1 2\nbtime 1796136632\n") == 1796136632
