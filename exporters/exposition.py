"""Prometheus text format 0.0.4, the format node_exporter serves.

Why not prometheus_client's `generate_latest`: it validates and escapes every metric and
label name again at every scrape, which measured 40% of this exporter's scrape CPU (the
scrape is the hot path; see docs/performance.md). Names and label sets repeat from scrape
to scrape, so here each series' rendered `name{labels}` and each family's HELP/TYPE lines
are cached and only values are formatted. Families of types the collectors never produce
(histograms, summaries, info) are handed to `generate_latest` unchanged.
Tests check the output parses back, with prometheus_client's parser, to the same samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SIMPLE_TYPES = {"counter": "counter", "gauge": "gauge", "unknown": "untyped"}
# Series come and go (interfaces, mounts); start afresh rather than grow without bound.
# A node has a few hundred series; each cached one costs about 200 bytes.
MAX_CACHED_SERIES = 5_000


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


class TextEncoder:
    def __init__(self) -> None:
        self._series: dict[tuple, str] = {}
        self._headers: dict[tuple, str] = {}

    def encode(self, families: Iterable[Metric]) -> bytes:
        out: list[str] = []
        series = self._series
        if len(series) > MAX_CACHED_SERIES:
            series.clear()
        for family in families:
            kind = SIMPLE_TYPES.get(family.type)
            if kind is None:
                out.append(generate_latest(_Single(family)).decode())
                continue
            samples = family.samples
            if len(samples) == 1 and not samples[0].labels:
                # A family of one value (most of them): its HELP, TYPE and name in one piece.
                sample = samples[0]
                key = (sample.name, family.name, kind, family.documentation)
                head = series.get(key)
                if head is None:
                    head = series[key] = self._header(family, kind) + f"{sample.name} "
                value = sample.value
                if type(value) is float and value - value == 0.0:  # finite: repr is its text
                    out.append(f"{head}{value!r}\n")
                else:
                    out.append(f"{head}{format_value(value)}\n")
                continue
            out.append(self._header(family, kind))
            for sample in samples:
                key = (sample.name, tuple(sample.labels.items()))
                prefix = series.get(key)
                if prefix is None:
                    prefix = series[key] = self._prefix(sample.name, sample.labels)
                value = sample.value
                if type(value) is float and value - value == 0.0:
                    out.append(f"{prefix}{value!r}\n")
                else:
                    out.append(f"{prefix}{format_value(value)}\n")
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
