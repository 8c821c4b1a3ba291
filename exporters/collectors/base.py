"""What every collector is: a prometheus_client custom collector with an injected source.

`collect()` calls `self.source()` at scrape time and turns the result into fresh metric
families; nothing updates gauges in the background. Tests pass a fake source and read the
result back through a fresh `CollectorRegistry`. Each collector registers itself under
the name users pass to `exporter.disabled_collectors` / `--collector.disable`.
"""

from __future__ import annotations

import errno
import sys
import threading
from collections.abc import Callable, Hashable, Iterator
from typing import Any, ClassVar, TypeVar

from prometheus_client.core import Metric

from minicluster.exporter.collectors import heldfiles

LINUX_AND_DARWIN = frozenset({"linux", "darwin"})
DARWIN_ONLY = frozenset({"darwin"})
LINUX_ONLY = frozenset({"linux"})
# Errors that mean "this host has no such source" rather than "reading it failed":
# the file is absent (no conntrack module, no IPv6), or the kernel turned it off
# (PSI disabled at boot answers EOPNOTSUPP).
ABSENT = (FileNotFoundError, NotADirectoryError)
_EOPNOTSUPP = (errno.EOPNOTSUPP, errno.ENOTSUP)

_REGISTERED: dict[str, type[Collector]] = {}


class Collector:
    name: ClassVar[str]
    # Where the collector has something to read; elsewhere it is not instantiated.
    platforms: ClassVar[frozenset[str]] = LINUX_AND_DARWIN

    def __init__(self, source: Callable[[], Any] | None = None):
        self.source = source if source is not None else self.default_source()

    @classmethod
    def from_options(cls, options: Any, source: Callable[[], Any] | None = None) -> Collector:
        """Build from the exporter's resolved options (most collectors need none)."""
        return cls(source)

    def default_source(self) -> Callable[[], Any]:
        raise NotImplementedError

    def collect(self) -> Iterator[Metric]:
        raise NotImplementedError


def register(cls: type[Collector]) -> type[Collector]:
    if cls.name in _REGISTERED:
        raise ValueError(f"two collectors named {cls.name!r}")
    _REGISTERED[cls.name] = cls
    return cls


def registered() -> dict[str, type[Collector]]:
    return dict(_REGISTERED)


def for_platform(linux: Callable[[], Any], darwin: Callable[[], Any]) -> Callable[[], Any]:
    """Pick the reader for the OS this runs on; other systems are not supported."""
    if sys.platform == "darwin":
        return darwin
    if sys.platform.startswith("linux"):
        return linux
    raise OSError(f"unsupported platform {sys.platform}")


def read_optional(path: str) -> str | None:
    """The file's text, or None where this host does not have the source.

    A collector whose source is absent publishes nothing and still succeeds, so a host
    without the module reads as "not there" rather than as a failing scrape.
    """
    try:
        return heldfiles.FILES.read(path)
    except ABSENT:
        return None
    except OSError as exc:
        if exc.errno in _EOPNOTSUPP:
            return None
        raise


T = TypeVar("T")


class _Collection:
    """What was read during the current collection, so collectors that share a source (cpu,
    stat and boottime all read /proc/stat; netdev and netclass list /sys/class/net) read it
    once per scrape. Outside a collection (a collector called directly) nothing is kept."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation = 0
        self.active = False
        self.texts: dict[Hashable, tuple[int, Any]] = {}


_COLLECTION = _Collection()


def begin_collection() -> None:
    with _COLLECTION.lock:
        _COLLECTION.generation += 1
        _COLLECTION.active = True
        _COLLECTION.texts.clear()


def end_collection() -> None:
    with _COLLECTION.lock:
        _COLLECTION.active = False
        _COLLECTION.texts.clear()


def once_per_collection(key: Hashable, compute: Callable[[], T]) -> T:
    """`compute()`, computed at most once per collection for each `key`."""
    state = _COLLECTION
    with state.lock:
        generation, active = state.generation, state.active
        hit = state.texts.get(key)
    if active and hit is not None and hit[0] == generation:
        return hit[1]
    result = compute()
    if active:
        with state.lock:
            if state.active and state.generation == generation:
                state.texts[key] = (generation, result)
    return result


def read_once(path: str) -> str:
    """The file's text, read at most once per collection."""
    return once_per_collection(path, lambda: heldfiles.FILES.read(path))
