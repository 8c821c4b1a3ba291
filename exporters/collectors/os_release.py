"""os: `node_os_info{...}` and `node_os_version{id,id_like,name}`, the collector named "os".

Linux: /etc/os-release, else /usr/lib/os-release, as node_exporter. macOS has no
os-release; its SystemVersion.plist is mapped onto the same labels (id "macos", name
"macOS", version_id "14.5", build_id "23F79"), so one dashboard query covers both.
Both files change only on an upgrade: they are parsed again only when their mtime moves.
"""

from __future__ import annotations

import os
import plistlib
import re
import shlex
import sys
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import Collector, register

OS_RELEASE_FILES = ("/etc/os-release", "/usr/lib/os-release")
SYSTEM_VERSION = "/System/Library/CoreServices/SystemVersion.plist"
INFO_LABELS = (
    *("build_id", "id", "id_like", "image_id", "image_version", "name", "pretty_name"),
    *("variant", "variant_id", "version", "version_codename", "version_id"),
)
VERSION_LABELS = ("id", "id_like", "name")
_VERSION = re.compile(r"^[0-9]+\.?[0-9]*")
MACOS_CODENAMES = {
    "11": "Big Sur",
    "12": "Monterey",
    "13": "Ventura",
    "14": "Sonoma",
    "15": "Sequoia",
    "26": "Tahoe",
}


def parse_os_release(text: str) -> dict[str, str]:
    """os-release(5): KEY=value lines, values quoted as in a shell -> {label: value}."""
    values = {}
    for line in text.splitlines():
        key, sep, raw = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        try:
            words = shlex.split(raw)
        except ValueError:
            words = [raw]
        values[key.lower()] = " ".join(words)
    return {label: values.get(label, "") for label in INFO_LABELS}


def parse_system_version(raw: bytes) -> dict[str, str]:
    """SystemVersion.plist -> os-release's labels."""
    plist = plistlib.loads(raw)
    name = plist.get("ProductName", "macOS")
    version = plist.get("ProductUserVisibleVersion") or plist.get("ProductVersion", "")
    build = plist.get("ProductBuildVersion", "")
    codename = MACOS_CODENAMES.get(version.split(".")[0], "")
    values = dict.fromkeys(INFO_LABELS, "")
    values.update(
        build_id=build,
        id="macos",
        name=name,
        pretty_name=f"{name} {version} ({build})" if build else f"{name} {version}",
        version=f"{version} ({codename})" if codename else version,
        version_codename=codename.lower().replace(" ", ""),
        version_id=plist.get("ProductVersion", version),
    )
    return values


def version_number(version_id: str) -> float:
    """ "22.04" -> 22.04, "12" -> 12, "rolling" -> 0 (major.minor, as node_exporter)."""
    match = _VERSION.match(version_id)
    return float(match[0]) if match else 0.0


class CachedRelease:
    """The parsed file, parsed again only when its mtime changes (an OS upgrade)."""

    def __init__(self, paths: tuple[str, ...], parse: Callable[[bytes], dict[str, str]]):
        self.paths, self.parse = paths, parse
        self.key: tuple[str, int] | None = None
        self.value: dict[str, str] = {}

    def __call__(self) -> dict[str, str]:
        for path in self.paths:
            try:
                mtime = os.stat(path).st_mtime_ns
            except FileNotFoundError:
                continue
            if self.key != (path, mtime):
                with open(path, "rb") as f:
                    self.value = self.parse(f.read())
                self.key = (path, mtime)
            return self.value
        return {}  # neither file: nothing to say, which is not a failure


@register
class OsCollector(Collector):
    name = "os"

    def default_source(self):
        if sys.platform == "darwin":
            return CachedRelease((SYSTEM_VERSION,), parse_system_version)
        return CachedRelease(OS_RELEASE_FILES, lambda raw: parse_os_release(raw.decode()))

    def collect(self) -> Iterator[Metric]:
        info = self.source()
        if not info:
            return
        family = GaugeMetricFamily(
            "node_os_info",
            "A metric with a constant '1' value labeled by " + ", ".join(INFO_LABELS) + ".",
            labels=list(INFO_LABELS),
        )
        family.add_metric([info[label] for label in INFO_LABELS], 1.0)
        yield family
        version = GaugeMetricFamily(
            "node_os_version",
            "Metric containing the major.minor part of the OS version.",
            labels=list(VERSION_LABELS),
        )
        version.add_metric(
            [info[label] for label in VERSION_LABELS], version_number(info["version_id"])
        )
        yield version
