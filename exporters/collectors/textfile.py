"""textfile: metrics that other programs write as `*.prom` files into one directory.

As node_exporter's textfile collector: every `*.prom` file of the directory
(`exporter.textfile_directory`, `--collector.textfile.directory`) is parsed at scrape time
and its families are served; `node_textfile_mtime_seconds{file}` gives each good file's
mtime and `node_textfile_scrape_error` is 1 when a file or the directory could not be
read. A file that does not parse, carries client-side timestamps, or redefines a family
another file already defined differently is skipped as a whole. Files are parsed again
only when their mtime or size changes. Without a directory the collector publishes
`node_textfile_scrape_error 0` alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from minicluster.exporter.collectors.base import Collector, register

log = logging.getLogger("exporters")

SUFFIX = ".prom"
MAX_CACHED_FILES = 1_000


class TextfileError(ValueError):
    pass


@dataclass
class Textfiles:
    """What one read of the directory found."""

    families: list[Metric] = field(default_factory=list)
    mtimes: dict[str, float] = field(default_factory=dict)  # path -> mtime of good files
    errors: list[str] = field(default_factory=list)


def parse_textfile(text: str, path: str) -> list[Metric]:
    """Families of one file; TextfileError when it does not parse or has timestamps."""
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as exc:  # the parser raises ValueError, IndexError, ... on bad input
        raise TextfileError(f"{path}: cannot parse: {exc}") from None
    for family in families:
        if any(sample.timestamp is not None for sample in family.samples):
            raise TextfileError(f"{path}: client-side timestamps are not supported")
        if not family.documentation:
            family.documentation = f"Metric read from {path}"
        _pad_labels(family)
    return families


def _pad_labels(family: Metric) -> None:
    """Give every sample of a family the same label names, missing ones empty, as
    node_exporter does (Prometheus' client rejects mixed label sets in one family)."""
    names = {name for sample in family.samples for name in sample.labels}
    for i, sample in enumerate(family.samples):
        if len(sample.labels) < len(names):
            labels = {name: sample.labels.get(name, "") for name in sorted(names)}
            family.samples[i] = sample._replace(labels=labels)


class TextfileReader:
    def __init__(self, directory: str | None):
        self.directory = directory
        self._cache: dict[str, tuple[tuple[int, int], list[Metric]]] = {}

    def _parse(self, path: str, st: os.stat_result) -> list[Metric]:
        key = (st.st_mtime_ns, st.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        with open(path, encoding="utf-8", errors="replace") as f:
            families = parse_textfile(f.read(), path)
        if len(self._cache) >= MAX_CACHED_FILES:
            self._cache.clear()
        self._cache[path] = (key, families)
        return families

    def __call__(self) -> Textfiles:
        result = Textfiles()
        if not self.directory:
            return result
        try:
            names = sorted(os.listdir(self.directory))
        except OSError as exc:
            result.errors.append(f"{self.directory}: {exc.strerror}")
            return result
        seen: dict[str, tuple[str, str]] = {}  # family name -> (type, help) of its first file
        series: set[tuple[str, tuple]] = set()
        for name in names:
            if not name.endswith(SUFFIX):
                continue
            path = os.path.join(self.directory, name)
            try:
                st = os.stat(path)
                families = self._parse(path, st)
                _check_consistent(families, seen, series, path)
            except OSError as exc:
                result.errors.append(f"{path}: {exc.strerror}")
                continue
            except TextfileError as exc:
                result.errors.append(str(exc))
                continue
            result.families.extend(families)
            result.mtimes[path] = round(st.st_mtime, 3)  # node_exporter: millisecond precision
        return result


def _check_consistent(
    families: list[Metric], seen: dict[str, tuple[str, str]], series: set, path: str
) -> None:
    """A family in two files must agree on type and help, and no series may repeat."""
    mine: set[tuple[str, tuple]] = set()
    for family in families:
        first = seen.get(family.name)
        if first is not None and first != (family.type, family.documentation):
            raise TextfileError(f"{path}: {family.name} differs from its earlier definition")
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            if key in series or key in mine:
                raise TextfileError(f"{path}: {sample.name} {sample.labels} is a duplicate")
            mine.add(key)
    for family in families:
        seen.setdefault(family.name, (family.type, family.documentation))
    series |= mine


@register
class TextfileCollector(Collector):
    name = "textfile"

    def __init__(self, source=None, directory: str | None = None):
        self.directory = directory
        self._errors: list[str] = []
        super().__init__(source)

    @classmethod
    def from_options(cls, options: Any, source=None) -> Collector:
        return cls(source, getattr(options, "textfile_directory", None))

    def default_source(self):
        return TextfileReader(self.directory)

    def collect(self) -> Iterator[Metric]:
        found: Textfiles = self.source()
        if found.errors != self._errors:  # log what changed, not every scrape
            self._errors = found.errors
            for error in found.errors:
                log.warning("textfile: %s", error)
        merged: dict[str, Metric] = {}
        for family in found.families:
            if family.name in merged:
                merged[family.name].samples.extend(family.samples)
            else:
                copy = Metric(family.name, family.documentation, family.type, family.unit)
                copy.samples = list(family.samples)
                merged[family.name] = copy
        yield from merged.values()
        if found.mtimes:
            mtime = GaugeMetricFamily(
                "node_textfile_mtime_seconds",
                "Unixtime mtime of textfiles successfully read.",
                labels=["file"],
            )
            for path, seconds in sorted(found.mtimes.items()):
                mtime.add_metric([path], seconds)
            yield mtime
        yield GaugeMetricFamily(
            "node_textfile_scrape_error",
            "1 if there was an error opening or reading a file, 0 otherwise",
            value=1.0 if found.errors else 0.0,
        )
