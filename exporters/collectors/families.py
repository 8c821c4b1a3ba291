"""Metric families built without prometheus_client's per-family checks, for the hot loops.

Each gives the very family or sample prometheus_client's own constructors give (tests
compare them); only the name check is done once per name instead of at every scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.samples import Sample

# Families of one value by (type, name, help): their fields, and their one sample's name
# and the fields after its value (timestamp, exemplar, ...: all empty).
_SINGLE: dict[tuple[type, str, str], tuple[dict[str, Any], str, tuple]] = {}
# The same key: the value and family of the last call.
_LAST: dict[tuple[type, str, str], tuple[float, Metric]] = {}
MAX_SINGLE_FAMILIES = 10_000  # names are fixed by the code, bar textfile and kernel fields
# Sample is a named tuple; tuple.__new__ skips its Python-level __new__ (same object).
_new_tuple = tuple.__new__
_EMPTY_TAIL = tuple(Sample("x", {}, 0.0)[3:])  # no timestamp, exemplar, ...


def single(kind: type[Metric], name: str, documentation: str, value: float) -> Metric:
    """`kind(name, documentation, value=value)`, the same family, built faster.

    prometheus_client checks the name again for every family, and a scrape builds some
    260 families of one value. The first family of each name is built and checked by
    prometheus_client itself; later ones take its fields and a fresh sample. While the
    value stays the same, the family of the last call is handed out again (nothing
    changes a family once collected; most of a node's values hold still between scrapes).
    """
    return _single((kind, name, documentation), value)


def _single(key: tuple[type[Metric], str, str], value: float) -> Metric:
    last = _LAST.get(key)
    if last is not None and last[0] == value and type(last[0]) is type(value):
        return last[1]
    known = _SINGLE.get(key)
    if known is None:
        kind, name, documentation = key
        family = kind(name, documentation, value=value)
        if len(family.samples) == 1 and not family.samples[0].labels:
            if len(_SINGLE) >= MAX_SINGLE_FAMILIES:
                _SINGLE.clear()
            fields = {k: v for k, v in vars(family).items() if k != "samples"}
            sample = family.samples[0]
            _SINGLE[key] = (fields, sample.name, tuple(sample[3:]))
        return family
    fields, sample_name, tail = known
    kind = key[0]
    family = kind.__new__(kind)
    family.__dict__ = fields.copy()
    family.samples = [_new_tuple(Sample, (sample_name, {}, value, *tail))]
    if len(_LAST) >= MAX_SINGLE_FAMILIES:
        _LAST.clear()
    _LAST[key] = (value, family)  # one tuple, replaced whole
    return family


class Singles:
    """`single()` for one collector's fields, by the collector's own key (a field name).

    `describe(key)` gives the family's type, name and help; it runs once per key, not at
    every scrape, so neither the name and help strings nor the lookup key are made again.
    """

    def __init__(self, describe: Callable[[Any], tuple[type[Metric], str, str]]):
        self.describe = describe
        self.described: dict[Hashable, tuple[type[Metric], str, str]] = {}

    def __call__(self, key: Hashable, value: float) -> Metric:
        described = self.described.get(key)
        if described is None:
            if len(self.described) >= MAX_SINGLE_FAMILIES:
                self.described.clear()
            described = self.described[key] = tuple(self.describe(key))
        return _single(described, value)


# Families with labels by (type, name, help, label names): their fields but the samples.
_LABELED: dict[tuple, dict[str, Any]] = {}


def labeled(kind: type[Metric], name: str, documentation: str, labels: tuple[str, ...]) -> Metric:
    """`kind(name, documentation, labels=labels)`, empty, built faster (as `single`): the
    first of each is built and checked by prometheus_client, later ones copy its fields
    (all immutable: strings and the label names' tuple) with a fresh list of samples."""
    key = (kind, name, documentation, labels)
    fields = _LABELED.get(key)
    if fields is None:
        family = kind(name, documentation, labels=list(labels))
        if len(_LABELED) >= MAX_SINGLE_FAMILIES:
            _LABELED.clear()
        _LABELED[key] = {k: v for k, v in vars(family).items() if k != "samples"}
        return family
    family = kind.__new__(kind)
    family.__dict__ = fields.copy()
    family.samples = []
    return family


def add_sample(family: Metric, labels: dict[str, str], value: float) -> None:
    """`family.add_metric(list(labels.values()), value)` for a gauge, counter or untyped
    family, `labels` given in the family's label order: the same sample, made directly
    (this is the inner loop of the per-device collectors)."""
    name = family.name + "_total" if family.type == "counter" else family.name
    family.samples.append(_new_tuple(Sample, (name, labels, value, *_EMPTY_TAIL)))
