"""What makes a scrape cheaper must not change it: kernel files read through descriptors
held between scrapes (fresh values, bounded descriptors, a file that goes away read
afresh), families of one value built from a known one, the mount table parsed on change."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
import time

import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, UnknownMetricFamily

from minicluster.exporter.collectors import families, filesystem, heldfiles, netdev
from minicluster.exporter.exposition import TextEncoder
from minicluster.exporter.server import connection_cap
from tests.support import require_tool

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/uptime"), reason="needs Linux /proc")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_held_proc_file_reads_the_kernels_current_text(monkeypatch):
    files = heldfiles.HeldFiles(budget=8)
    first = files.read("/proc/uptime")
    assert len(files) == 1
    real_open, opened = os.open, []

    def counting_open(path, *args):  # os.open of every thread: count this file's alone
        if path == "/proc/uptime":
            opened.append(path)
        return real_open(path, *args)

    monkeypatch.setattr(heldfiles.os, "open", counting_open)
    deadline = time.monotonic() + 10
    uptime = first.split()[0]
    while (later := files.read("/proc/uptime")).split()[0] == uptime:
        assert time.monotonic() < deadline
    assert float(later.split()[0]) > float(first.split()[0])  # uptime moved on
    assert opened == []  # through the held descriptor
    assert files.read("/proc/self/stat").split()[0] == str(os.getpid())


def test_every_proc_and_sys_file_the_collectors_read_matches_a_fresh_open():
    files = heldfiles.HeldFiles(budget=64)
    for path in ("/proc/meminfo", "/proc/net/dev", "/proc/vmstat", "/proc/net/snmp"):
        files.read(path)  # held now
        with open(path) as f:
            fresh = f.read()
        # Counters move between the two reads; the lines and their names do not.
        held = files.read(path)
        assert [line.split()[:1] for line in held.splitlines()] == [
            line.split()[:1] for line in fresh.splitlines()
        ]


def test_files_outside_proc_and_sys_are_not_held(tmp_path):
    path = tmp_path / "metrics.prom"
    path.write_text("a 1\n")
    files = heldfiles.HeldFiles(budget=8)
    assert files.read(str(path)) == "a 1\n"
    replaced = tmp_path / "new"
    replaced.write_text("a 2\n")
    replaced.rename(path)  # an atomic replace, as textfile writers do
    assert files.read(str(path)) == "a 2\n"
    assert len(files) == 0


def test_descriptors_stay_within_the_budget():
    files = heldfiles.HeldFiles(budget=3)
    fds = open_fds()
    paths = ["/proc/uptime", "/proc/loadavg", "/proc/meminfo", "/proc/stat", "/proc/vmstat"]
    for _ in range(3):
        for path in paths:
            files.read(path)
    assert len(files) <= 3
    assert open_fds() - fds <= 3


def test_a_held_file_that_went_away_is_opened_again(monkeypatch):
    files = heldfiles.HeldFiles(budget=8)
    files.read("/proc/uptime")
    held = files._held["/proc/uptime"].fd
    real_pread, calls = os.pread, []

    def gone_once(fd, size, offset):  # os.pread of every thread: fail this one's
        if fd == held and not calls:  # the device behind the descriptor was removed
            calls.append(fd)
            raise OSError(errno.ENODEV, "No such device")
        return real_pread(fd, size, offset)

    real_open, opened = os.open, []

    def counting_open(path, *args):
        if path == "/proc/uptime":
            opened.append(path)
        return real_open(path, *args)

    fds = open_fds()
    monkeypatch.setattr(heldfiles.os, "pread", gone_once)
    monkeypatch.setattr(heldfiles.os, "open", counting_open)
    assert float(files.read("/proc/uptime").split()[0]) > 0
    assert opened == ["/proc/uptime"] and calls == [held]  # read through a new descriptor
    assert len(files) == 1 and open_fds() == fds  # and the old one closed
    files.read("/proc/uptime")
    assert opened == ["/proc/uptime"]  # held again


def test_an_attribute_that_cannot_be_read_now_raises_each_time_and_stays_held(monkeypatch):
    files = heldfiles.HeldFiles(budget=8)
    real_pread = os.pread

    def invalid(fd, size, offset):  # the speed of a link that is down
        if os.readlink(f"/proc/self/fd/{fd}") == "/proc/uptime":
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pread(fd, size, offset)

    monkeypatch.setattr(heldfiles.os, "pread", invalid)
    for _ in range(2):
        with pytest.raises(OSError) as raised:
            files.read("/proc/uptime")
        assert raised.value.errno == errno.EINVAL
    assert len(files) == 1
    assert files.read_many(["/proc/uptime", "/proc/loadavg"])[0] is None


def test_no_held_files_under_a_low_open_file_limit_and_connections_leave_room(monkeypatch):
    monkeypatch.setattr(heldfiles.resource, "getrlimit", lambda _: (64, 64))
    assert heldfiles.held_files_budget() == 0
    monkeypatch.setattr(heldfiles.resource, "getrlimit", lambda _: (1024, 1024))
    assert heldfiles.held_files_budget() == 224
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY:
        # connection_cap reads the real limit: held files and connections fit in it together.
        assert connection_cap() + heldfiles.held_files_budget() + open_fds() <= max(soft, 4 + 256)


def test_forgetting_a_device_closes_only_its_files():
    files = heldfiles.HeldFiles(budget=8)
    files.read("/proc/self/stat")
    files.read("/proc/self/statm")
    files.read("/proc/uptime")
    files.forget("/proc/self/")
    assert len(files) == 1
    assert files.read("/proc/uptime")


def test_a_device_gone_or_made_again_under_its_name_has_its_held_files_closed(
    tmp_path, monkeypatch
):
    forgotten = []

    class Recording(heldfiles.HeldFiles):
        def forget(self, prefix: str) -> None:
            forgotten.append(prefix)
            super().forget(prefix)

    monkeypatch.setattr(heldfiles, "FILES", Recording())
    net = tmp_path / "net"
    net.mkdir()
    for device in ("eth0", "v3", "v3-again"):
        (tmp_path / "devices" / device).mkdir(parents=True)
    (net / "eth0").symlink_to(tmp_path / "devices" / "eth0")
    (net / "v3").symlink_to(tmp_path / "devices" / "v3")
    (net / "bonding_masters").write_text("")  # a file beside the devices, not one
    known: set[tuple[str, int]] = set()
    assert [name for name, _ in netdev.net_devices(str(net), known)] == ["eth0", "v3"]
    assert forgotten == []
    # v3 moved to another namespace, and a new v3 came here: a new entry, another inode.
    (tmp_path / "v3").symlink_to(tmp_path / "devices" / "v3-again")
    (tmp_path / "v3").rename(net / "v3")
    assert [name for name, _ in netdev.net_devices(str(net), known)] == ["eth0", "v3"]
    assert forgotten == [f"{net}/v3/"]


@pytest.mark.parametrize("kind", [GaugeMetricFamily, CounterMetricFamily, UnknownMetricFamily])
@pytest.mark.parametrize("by_key", [False, True])
def test_a_family_of_one_value_is_the_one_prometheus_client_builds(kind, by_key):
    described = []
    by_field = families.Singles(
        lambda field: described.append(field) or (kind, f"node_test_{field}", "A value.")
    )
    for value in (1.5, 7, float("nan")):  # the first call builds, the later ones copy
        if by_key:
            fast = by_field("value_total", value)
        else:
            fast = families.single(kind, "node_test_value_total", "A value.", value)
        library = kind("node_test_value_total", "A value.", value=value)
        assert type(fast) is kind
        assert vars(fast).keys() == vars(library).keys()
        assert (fast.name, fast.documentation, fast.type, fast.unit) == (
            library.name,
            library.documentation,
            library.type,
            library.unit,
        )
        [got], [want] = fast.samples, library.samples
        assert got.name == want.name and got.labels == want.labels == {}
        assert got[3:] == want[3:]
        assert got.value == want.value or (value != value and got.value != got.value)
        assert TextEncoder().encode([fast]) == TextEncoder().encode([library])
    assert described == (["value_total"] if by_key else [])  # described once per key
    with pytest.raises(ValueError):  # a bad name is still refused, by prometheus_client
        families.single(GaugeMetricFamily, "", "A value.", 1.0)
    with pytest.raises(ValueError):
        families.Singles(lambda field: (kind, "", "A value."))("bad", 1.0)


@pytest.mark.parametrize("by_key", [False, True])
def test_a_family_of_one_value_is_handed_out_again_while_its_value_holds(by_key):
    by_field = families.Singles(lambda field: (GaugeMetricFamily, f"node_test_{field}", "A."))

    def family(value):
        if by_key:
            return by_field("held", value)
        return families.single(GaugeMetricFamily, "node_test_held", "A.", value)

    first, second = family(1.0), family(1.0)
    again = family(1.0)
    assert again is second  # built once the template is known, then handed out again
    changed = family(2.5)
    assert changed is not again and changed.samples[0].value == 2.5
    assert again.samples[0].value == 1.0  # the family handed out before is left as it was
    assert family(2.5) is changed
    as_int = family(2)  # equal to 2.0 but written "2": not the float's family
    assert family(2.0) is not as_int and family(2).samples[0].value == 2
    nan = family(float("nan"))
    assert family(float("nan")) is not nan  # NaN equals nothing: built each time
    assert first.samples[0].value == 1.0


def test_the_mount_table_is_parsed_again_only_when_it_changes(tmp_path):
    table = tmp_path / "mounts"
    table.write_text("/dev/sda1 / ext4 rw 0 0\n")
    asked = []

    def mounts():
        asked.append(table.read_text())
        return [filesystem.Mount("/dev/sda1", "/", "ext4")]

    cached = filesystem.LinuxMounts(str(table), mounts)
    assert cached() == cached() == [filesystem.Mount("/dev/sda1", "/", "ext4")]
    assert len(asked) == 1
    table.write_text("/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /data ext4 rw 0 0\n")
    cached()
    assert len(asked) == 2


MOUNT_AND_UNMOUNT = """
import subprocess, sys, tempfile
from minicluster.exporter.collectors.filesystem import LinuxMounts
mounts = LinuxMounts()
before = mounts()
assert mounts() is before, "asked again with no mount in between"
folder = tempfile.mkdtemp()
subprocess.run(["mount", "-t", "tmpfs", "none", folder], check=True)
assert folder in [m.mountpoint for m in mounts()], "a new mount is seen at once"
subprocess.run(["umount", folder], check=True)
assert folder not in [m.mountpoint for m in mounts()], "an unmount is seen at once"
print("ok")
"""


@pytest.mark.e2e
def test_the_kernel_mount_table_is_read_again_after_a_mount_or_unmount():
    """Polled, not read, while unchanged: a mount and an unmount in a private mount
    namespace (no one else sees them) show at the very next call."""
    require_tool("unshare", "apt-get install util-linux")
    if os.geteuid() != 0:
        pytest.fail("mounting needs root: run the tests as root (CI does)")
    argv = ["unshare", "--mount", "--propagation", "private", sys.executable, "-c"]
    result = subprocess.run([*argv, MOUNT_AND_UNMOUNT], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr


@pytest.mark.parametrize("kind", [GaugeMetricFamily, CounterMetricFamily, UnknownMetricFamily])
def test_a_sample_added_directly_is_the_one_add_metric_adds(kind):
    fast = kind("node_test_bytes_total", "Bytes.", labels=["device", "kind"])
    library = kind("node_test_bytes_total", "Bytes.", labels=["device", "kind"])
    families.add_sample(fast, {"device": "eth0", "kind": "ethernet"}, 12.0)
    library.add_metric(["eth0", "ethernet"], 12.0)
    assert fast.samples == library.samples
    assert TextEncoder().encode([fast]) == TextEncoder().encode([library])


@pytest.mark.parametrize("kind", [GaugeMetricFamily, CounterMetricFamily, UnknownMetricFamily])
def test_a_labeled_family_is_the_one_prometheus_client_builds(kind):
    for value in (3.0, 4):  # the first call builds, the later ones copy
        fast = families.labeled(kind, "node_test_bytes_total", "Bytes.", ("device", "kind"))
        library = kind("node_test_bytes_total", "Bytes.", labels=["device", "kind"])
        assert type(fast) is kind and vars(fast) == vars(library)
        families.add_sample(fast, {"device": "eth0", "kind": "ethernet"}, value)
        library.add_metric(["eth0", "ethernet"], value)
        assert fast.samples == library.samples and fast == library
        assert TextEncoder().encode([fast]) == TextEncoder().encode([library])
    again = families.labeled(kind, "node_test_bytes_total", "Bytes.", ("device", "kind"))
    assert again.samples == []  # a fresh list, not the last family's
    with pytest.raises(ValueError):  # a bad name is still refused, by prometheus_client
        families.labeled(GaugeMetricFamily, "", "Bytes.", ("device",))
