"""Kernel files read through descriptors held between scrapes: fresh values, bounded
descriptors, and a file that goes away read afresh."""

from __future__ import annotations

import errno
import os
import resource
import time

import pytest

from minicluster.exporter.collectors import base
from minicluster.exporter.server import connection_cap

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/uptime"), reason="needs Linux /proc")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_held_proc_file_reads_the_kernels_current_text(monkeypatch):
    files = base.HeldFiles(budget=8)
    first = files.read("/proc/uptime")
    assert len(files) == 1
    real_open, opened = os.open, []
    monkeypatch.setattr(base.os, "open", lambda *args: opened.append(args) or real_open(*args))
    deadline = time.monotonic() + 10
    while (later := files.read("/proc/uptime")) == first and time.monotonic() < deadline:
        pass
    assert float(later.split()[0]) > float(first.split()[0])  # uptime moved on
    assert opened == []  # through the held descriptor
    assert files.read("/proc/self/stat").split()[0] == str(os.getpid())


def test_every_proc_and_sys_file_the_collectors_read_matches_a_fresh_open():
    files = base.HeldFiles(budget=64)
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
    files = base.HeldFiles(budget=8)
    assert files.read(str(path)) == "a 1\n"
    replaced = tmp_path / "new"
    replaced.write_text("a 2\n")
    replaced.rename(path)  # an atomic replace, as textfile writers do
    assert files.read(str(path)) == "a 2\n"
    assert len(files) == 0


def test_descriptors_stay_within_the_budget():
    files = base.HeldFiles(budget=3)
    fds = open_fds()
    paths = ["/proc/uptime", "/proc/loadavg", "/proc/meminfo", "/proc/stat", "/proc/vmstat"]
    for _ in range(3):
        for path in paths:
            files.read(path)
    assert len(files) <= 3
    assert open_fds() - fds <= 3


def test_a_held_file_that_went_away_is_opened_again(monkeypatch):
    files = base.HeldFiles(budget=8)
    files.read("/proc/uptime")
    real_pread, calls = os.pread, []

    def gone_once(fd, size, offset):
        calls.append(fd)
        if len(calls) == 1:  # the device behind the descriptor was removed
            raise OSError(errno.ENODEV, "No such device")
        return real_pread(fd, size, offset)

    real_open, opened = os.open, []

    def counting_open(path, flags):
        opened.append(path)
        return real_open(path, flags)

    fds = open_fds()
    monkeypatch.setattr(base.os, "pread", gone_once)
    monkeypatch.setattr(base.os, "open", counting_open)
    assert float(files.read("/proc/uptime").split()[0]) > 0
    assert opened == ["/proc/uptime"] and len(calls) == 2  # read through a new descriptor
    assert len(files) == 1 and open_fds() == fds  # and the old one closed
    files.read("/proc/uptime")
    assert opened == ["/proc/uptime"]  # held again


def test_an_attribute_that_cannot_be_read_now_raises_each_time_and_stays_held(monkeypatch):
    files = base.HeldFiles(budget=8)

    def invalid(fd, size, offset):  # the speed of a link that is down
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(base.os, "pread", invalid)
    for _ in range(2):
        with pytest.raises(OSError) as raised:
            files.read("/proc/uptime")
        assert raised.value.errno == errno.EINVAL
    assert len(files) == 1


def test_no_held_files_under_a_low_open_file_limit_and_connections_leave_room(monkeypatch):
    monkeypatch.setattr(base.resource, "getrlimit", lambda _: (64, 64))
    assert base.held_files_budget() == 0
    monkeypatch.setattr(base.resource, "getrlimit", lambda _: (1024, 1024))
    assert base.held_files_budget() == 224
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY:
        # connection_cap reads the real limit: held files and connections fit in it together.
        assert connection_cap() + base.held_files_budget() + open_fds() <= max(soft, 4 + 256)
