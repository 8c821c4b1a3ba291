"""filesystem: size, free, avail, inodes and read-only flag per mounted filesystem.

Labels `device`, `fstype`, `mountpoint` as node_exporter; pseudo filesystems and the
mount points node_exporter skips by default are skipped here too.
"""

from __future__ import annotations

import os
import re
import select
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psutil
from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import Collector, register
from minicluster.exporter.collectors.families import add_sample, labeled
from minicluster.exporter.collectors.heldfiles import pread_all, read_text

# node_exporter's defaults for --collector.filesystem.{fs-types,mount-points}-exclude.
EXCLUDE = {
    "linux": (
        re.compile(
            r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|"
            r"hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|"
            r"selinuxfs|squashfs|erofs|sysfs|tracefs)$"
        ),
        re.compile(
            r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|"
            r"var/lib/containers/storage/.+)($|/)"
        ),
    ),
    "darwin": (re.compile(r"^(autofs|devfs)$"), re.compile(r"^/(dev)($|/)")),
}


@dataclass(frozen=True)
class Filesystem:
    device: str
    fstype: str
    mountpoint: str
    size_bytes: float = 0
    free_bytes: float = 0
    avail_bytes: float = 0
    files: float = 0
    files_free: float = 0
    readonly: bool = False
    error: bool = False  # statvfs failed: only node_filesystem_device_error is published


@dataclass(frozen=True)
class Mount:
    device: str
    mountpoint: str
    fstype: str


def list_mounts() -> list[Mount]:
    """Every mount: /proc/self/mounts on Linux, getfsstat on macOS."""
    return [Mount(p.device, p.mountpoint, p.fstype) for p in psutil.disk_partitions(all=True)]


class LinuxMounts:
    """list_mounts(), asked again only when /proc/self/mounts changes: the table changes
    with every mount and unmount, and reading it back costs a tenth of what psutil's parse
    and device lookups cost at every scrape.

    The kernel's own table is not even read back while unchanged: a descriptor of it
    polls with POLLPRI (and POLLERR) once after each mount or unmount in this mount
    namespace since it was opened or last polled (proc(5)). Polling consumes the news, so
    the table is read right after a poll that reported it: a change made in between is
    in what is read. Other paths (fixtures) are read and compared at every call.
    """

    def __init__(self, table: str = "/proc/self/mounts", mounts=list_mounts):
        self.table, self.mounts = table, mounts
        self._last: tuple[str, list[Mount]] | None = None
        self._fd: int | None = None
        self._poll: select.poll | None = None

    def __call__(self) -> list[Mount]:
        last = self._last
        if last is not None and self._poll is not None:
            if not self._poll.poll(0):
                return last[1]  # no mount or unmount since the table was last read
            text = self._read_own()
        else:
            text = read_text(self.table)
            if self._fd is None and self.table.startswith("/proc/"):
                text = self._watch() or text
        if last is not None and last[0] == text:
            return last[1]
        mounts = self.mounts()
        self._last = (text, mounts)
        return mounts

    def _watch(self) -> str | None:
        """Open the table to poll it, and its text read through that descriptor: changes
        after the open are reported by the next poll."""
        try:
            self._fd = os.open(self.table, os.O_RDONLY | os.O_CLOEXEC)
            text = self._read_own()
        except OSError:
            self.close()
            return None
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLPRI | select.POLLERR)
        return text

    def _read_own(self) -> str:
        return pread_all(self._fd).decode("utf-8", "replace")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._poll = None, None


def read_filesystems(
    mounts: Callable[[], list[Mount]] = list_mounts,
    statvfs: Callable[[str], os.statvfs_result] = os.statvfs,
    platform: str = sys.platform,
) -> list[Filesystem]:
    fstype_exclude, mountpoint_exclude = EXCLUDE["darwin" if platform == "darwin" else "linux"]
    seen: set[tuple[str, str]] = set()
    result = []
    for mount in mounts():
        key = (mount.device, mount.mountpoint)
        if key in seen:
            continue
        if fstype_exclude.match(mount.fstype) or mountpoint_exclude.match(mount.mountpoint):
            continue
        seen.add(key)
        try:
            st = statvfs(mount.mountpoint)
        except OSError:
            result.append(Filesystem(mount.device, mount.fstype, mount.mountpoint, error=True))
            continue
        result.append(
            Filesystem(
                mount.device,
                mount.fstype,
                mount.mountpoint,
                size_bytes=st.f_blocks * st.f_frsize,
                free_bytes=st.f_bfree * st.f_frsize,
                avail_bytes=st.f_bavail * st.f_frsize,
                files=st.f_files,
                files_free=st.f_ffree,
                readonly=bool(st.f_flag & os.ST_RDONLY),
            )
        )
    return result


@register
class FilesystemCollector(Collector):
    name = "filesystem"

    def default_source(self):
        if sys.platform.startswith("linux"):
            mounts = LinuxMounts()
            return lambda: read_filesystems(mounts)
        return read_filesystems

    def collect(self) -> Iterator[Metric]:
        labels = ("device", "fstype", "mountpoint")

        def gauge(name: str, help_text: str) -> Metric:
            return labeled(GaugeMetricFamily, f"node_filesystem_{name}", help_text, labels)

        families = {
            "size_bytes": gauge("size_bytes", "Filesystem size in bytes."),
            "free_bytes": gauge("free_bytes", "Filesystem free space in bytes."),
            "avail_bytes": gauge("avail_bytes", "Filesystem space available to non-root users."),
            "files": gauge("files", "Filesystem total file nodes."),
            "files_free": gauge("files_free", "Filesystem total free file nodes."),
            "readonly": gauge("readonly", "Filesystem read-only status."),
        }
        error = gauge("device_error", "Whether an error occurred while getting statistics.")
        for fs in self.source():
            values = {"device": fs.device, "fstype": fs.fstype, "mountpoint": fs.mountpoint}
            add_sample(error, values, 1.0 if fs.error else 0.0)
            if fs.error:
                continue
            for field, family in families.items():
                add_sample(family, values, float(getattr(fs, field)))
        yield from families.values()
        yield error
