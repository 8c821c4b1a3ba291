"""Prometheus text format 0.0.4, the format node_exporter serves.

Why not prometheus_client's `generate_latest`: it validates and escapes every metric and
label name again at every scrape, which measured 40% of this exporter's scrape CPU (the
scrape is the hot path; see docs/performance.md). Names and label sets repeat from scrape
to scrape, so here each family's HELP/TYPE lines and its series' rendered `name{labels}`
are kept and only values are formatted; a family whose series and values are all as at
the last scrape (a disk's size, an interface's speed, a collector's success) is sent as
the same text. Families of types the collectors never produce
(histograms, summaries, info) are handed to `generate_latest` unchanged.
Tests check the output parses back, with prometheus_client's parser, to the same samples.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable

from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SIMPLE_TYPES = {"counter": "counter", "gauge": "gauge", "unknown": "untyped"}
# Families whose last text is kept: a node has about 260 (the textfile collector's come
# and go); past this many the caches start afresh rather than grow without bound.
MAX_CACHED_FAMILIES = 2_000


def _escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def format_value(value: float) -> str:
    if type(value) is int:
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _Single:
    def __init__(self, family: Metric):
        self.family = family

    def collect(self):
        return [self.family]


# A sample is a named tuple (name, labels, value, ...): what identifies its line, and its value.
_NAME_AND_LABELS = operator.itemgetter(0, 1)
_VALUE = operator.itemgetter(2)


def _line(prefix: str, value: float) -> str:
    if type(value) is float and value - value == 0.0:  # finite: repr is its text
        return f"{prefix}{value!r}\n"
    return f"{prefix}{format_value(value)}\n"


class _FamilyText:
    """A family's last text, and what it was made from."""

    __slots__ = ("ids", "prefixes", "text", "values")

    def __init__(self, ids: list, values: list, prefixes: list[str], text: str):
        self.ids, self.values, self.prefixes, self.text = ids, values, prefixes, text


class TextEncoder:
    def __init__(self) -> None:
        self._headers: dict[tuple, str] = {}
        # Families of one value: their HELP and TYPE lines and sample name, in one piece.
        self._singles: dict[tuple, str] = {}
        self._families: dict[tuple, _FamilyText] = {}
        # By id(): the families of the last scrape, each with its text.
        self._seen: dict[int, tuple[Metric, str]] = {}

    def encode(self, families: Iterable[Metric]) -> bytes:
        out: list[str] = []
        # A family handed out again (families.single while its value holds, netdev's and
        # netclass's while nothing changed) is the very same object: its text is known
        # without reading it, which matters on a node where the scrape's objects are out of
        # the CPU's caches.
        seen, now = self._seen, {}
        singles, known = self._singles, self._families
        if len(singles) > MAX_CACHED_FAMILIES:
            singles.clear()
        if len(known) > MAX_CACHED_FAMILIES:
            known.clear()
        if len(self._headers) > MAX_CACHED_FAMILIES:
            self._headers.clear()
        for family in families:
            hit = seen.get(id(family))
            if hit is not None and hit[0] is family:
                out.append(hit[1])
                now[id(family)] = hit
                continue
            kind = SIMPLE_TYPES.get(family.type)
            if kind is None:
                out.append(generate_latest(_Single(family)).decode())
                continue
            samples = family.samples
            if len(samples) == 1 and not samples[0].labels:
                # A family of one value (most of them): its HELP, TYPE and name in one piece.
                sample = samples[0]
                key = (sample.name, family.name, kind, family.documentation)
                head = singles.get(key)
                if head is None:
                    head = singles[key] = self._header(family, kind) + f"{sample.name} "
                line = _line(head, sample.value)
                out.append(line)
                now[id(family)] = (family, line)
                continue
            # A family with labels: the same series as at the last scrape (compared in C,
            # list to list) take their rendered names by position, and the same values too
            # give the same text. Most of a node's labelled series (per CPU, device,
            # interface, mount, collector) are there at every scrape.
            key = (family.name, kind, family.documentation)
            last = known.get(key)
            ids = list(map(_NAME_AND_LABELS, samples))
            values = list(map(_VALUE, samples))
            if last is not None and last.ids == ids:
                if last.values == values:
                    out.append(last.text)
                    now[id(family)] = (family, last.text)
                    continue
                prefixes = last.prefixes
            else:
                prefixes = [self._prefix(name, labels) for name, labels in ids]
            text = self._header(family, kind) + "".join(map(_line, prefixes, values))
            known[key] = _FamilyText(ids, values, prefixes, text)
            out.append(text)
            now[id(family)] = (family, text)
        self._seen = now  # replaced whole; holds the families, so no id is reused meanwhile
        return "".join(out).encode()

    def _header(self, family: Metric, kind: str) -> str:
        key = (family.name, kind, family.documentation)
        header = self._headers.get(key)
        if header is None:
            name = family.name + "_total" if kind == "counter" else family.name
            text = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
            header = self._headers[key] = f"# HELP {name} {text}\n# TYPE {name} {kind}\n"
        return header

    @staticmethod
    def _prefix(name: str, labels: dict[str, str]) -> str:
        if not labels:
            return f"{name} "
        rendered = ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in labels.items())
        return f"{name}{{{rendered}}} "
