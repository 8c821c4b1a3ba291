"""Kernel files read through descriptors held between scrapes.

Opening a /proc or /sys file costs more than reading it (92 files: 1.2 ms with
open/read/close, 0.3 ms with pread on held descriptors). Reading at offset 0 makes the
kernel generate the text afresh (seq_file, kernfs and sysctl files all restart at offset
0), so values are as fresh as with a new open. Other paths (fixtures, the textfile
directory) are opened each time: a regular file replaced by a rename would keep its old
text behind a held descriptor.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import sys
import threading
from collections.abc import Sequence

HELD_PREFIXES = ("/proc/", "/sys/")
# At most this many held descriptors, and a quarter of the open-file limit less headroom:
# connections need the rest (server.connection_cap leaves this many out).
MAX_HELD_FILES = 256
_READ_SIZE = 65536
# Errors of a held descriptor whose file is gone (a removed device's sysfs entry): the path
# is opened again, and may be a new device's by now.
_GONE = frozenset({errno.ENODEV, errno.ENOENT, errno.ESTALE, errno.EBADF, errno.ENXIO})


def held_files_budget() -> int:
    if not sys.platform.startswith("linux"):
        return 0  # macOS collectors ask sysctl and IOKit, not files
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_HELD_FILES
    return max(0, min(MAX_HELD_FILES, soft // 4 - 32))


def pread_all(fd: int) -> bytes:
    data = os.pread(fd, _READ_SIZE, 0)
    if len(data) < _READ_SIZE:
        return data  # all of it: these files answer a read with as much as it asks for
    chunks = [data]
    while data:
        data = os.pread(fd, _READ_SIZE, sum(map(len, chunks)))
        chunks.append(data)
    return b"".join(chunks)


def _read_closed(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class _Held:
    __slots__ = ("fd", "retired", "users")

    def __init__(self, fd: int):
        self.fd, self.users, self.retired = fd, 0, False


class HeldFiles:
    """Kernel files by path, each read with pread on a descriptor opened once.

    A descriptor is closed only once no thread is reading it (a closed number could be
    reused by another open in between). A read that fails on a held descriptor (the device
    went away) retires it and opens the path again, which raises what a fresh open raises.
    """

    def __init__(self, budget: int | None = None):
        self._lock = threading.Lock()
        self._held: dict[str, _Held] = {}
        self._budget = budget

    @property
    def budget(self) -> int:
        if self._budget is None:
            self._budget = held_files_budget()
        return self._budget

    def read_bytes(self, path: str) -> bytes:
        with self._lock:
            held = self._held.get(path)
            if held is not None:
                held.users += 1
        if held is None:
            return self._open(path)
        data = error = None
        try:
            data = pread_all(held.fd)
        except OSError as exc:
            error = exc
        finally:
            with self._lock:
                held.users -= 1
                if error is not None and error.errno in _GONE:
                    self._retire(path, held)
                elif held.retired and held.users == 0:
                    os.close(held.fd)
        if error is None:
            return data
        if error.errno in _GONE:
            return self._open(path)
        raise error  # the attribute cannot be read now (EINVAL: no speed on a link down)

    def read(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8", "replace")

    def read_many(self, paths: Sequence[str], hold: bool = True) -> list[str | None]:
        """Each file's text, or None where it cannot be read (as a sysfs attribute the
        driver does not support); one round of the lock for all of them. `hold=False`
        for files read once (a device's fixed attributes): no descriptor kept for them."""
        with self._lock:
            helds = [self._held.get(path) for path in paths]
            for held in helds:
                if held is not None:
                    held.users += 1
        texts: list[str | None] = []
        gone: list[int] = []
        try:
            for path, held in zip(paths, helds, strict=True):
                try:
                    if held is not None:
                        data = pread_all(held.fd)
                    else:
                        data = self._open(path) if hold else _read_closed(path)
                except OSError as exc:
                    if held is not None and exc.errno in _GONE:
                        gone.append(len(texts))
                    texts.append(None)
                    continue
                texts.append(data.decode("utf-8", "replace"))
        finally:
            with self._lock:
                for i, held in enumerate(helds):
                    if held is None:
                        continue
                    held.users -= 1
                    if i in gone:
                        self._retire(paths[i], held)
                    elif held.retired and held.users == 0:
                        os.close(held.fd)
        for i in gone:  # the file went away: its path may be another device's by now
            with contextlib.suppress(OSError):
                texts[i] = self._open(paths[i]).decode("utf-8", "replace")
        return texts

    def _open(self, path: str) -> bytes:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        data = error = None
        try:
            data = pread_all(fd)
        except OSError as exc:
            if exc.errno == errno.ESPIPE:
                with os.fdopen(fd, "rb") as f:  # a pipe or socket: read it the plain way
                    return f.read()
            error = exc
        except BaseException:
            os.close(fd)
            raise
        # A file that opens but cannot be read now (EINVAL, EOPNOTSUPP) is held too: the
        # next scrape asks it again without opening it again.
        if not path.startswith(HELD_PREFIXES) or not self._hold(path, fd):
            os.close(fd)
        if error is not None:
            raise error
        return data

    def _hold(self, path: str, fd: int) -> bool:
        with self._lock:
            if path in self._held or self.budget <= 0:
                return False
            if len(self._held) >= self.budget:
                # Devices come and go (veths, disks): start afresh rather than grow.
                for old_path, old in list(self._held.items()):
                    self._retire(old_path, old)
            self._held[path] = _Held(fd)
            return True

    def _retire(self, path: str, held: _Held) -> None:
        # Called with the lock held.
        if self._held.get(path) is held:
            del self._held[path]
        if not held.retired:
            held.retired = True
            if held.users == 0:
                os.close(held.fd)

    def forget(self, prefix: str) -> None:
        """Close the descriptors of paths under `prefix` (a device that went away)."""
        with self._lock:
            for path, held in list(self._held.items()):
                if path.startswith(prefix):
                    self._retire(path, held)

    def __len__(self) -> int:
        return len(self._held)


FILES = HeldFiles()


def read_text(path: str) -> str:
    """The file's text; kernel files through a held descriptor (see HeldFiles)."""
    return FILES.read(path)


def read_many(paths: Sequence[str], hold: bool = True) -> list[str | None]:
    """Each file's text, None where it cannot be read (see HeldFiles.read_many)."""
    return FILES.read_many(paths, hold)


def forget_files(prefix: str) -> None:
    """Close the held descriptors of the files under `prefix` (a device that went away)."""
    FILES.forget(prefix)
