"""Metric families built without prometheus_client's per-family checks, for the hot loops.

Each gives the very family or sample prometheus_client's own constructors give (tests
compare them); only the name check is done once per name instead of at every scrape.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.core import Metric
from prometheus_client.samples import Sample

# Families of one value by (type, name, help): their fields, and their one sample's name.
_SINGLE: dict[tuple[type, str, str], tuple[dict[str, Any], str]] = {}
MAX_SINGLE_FAMILIES = 10_000  # names are fixed by the code, bar textfile and kernel fields


def single(kind: type[Metric], name: str, documentation: str, value: float) -> Metric:
    """`kind(name, documentation, value=value)`, the same family, built faster.

    prometheus_client checks the name again for every family (1.2 us each, and a scrape
    builds some 260 families of one value). The first family of each name is built and
    checked by prometheus_client itself; later ones take its fields and a fresh sample.
    """
    key = (kind, name, documentation)
    known = _SINGLE.get(key)
    if known is None:
        family = kind(name, documentation, value=value)
        if len(family.samples) == 1 and not family.samples[0].labels:
            if len(_SINGLE) >= MAX_SINGLE_FAMILIES:
                _SINGLE.clear()
            fields = {k: v for k, v in vars(family).items() if k != "samples"}
            _SINGLE[key] = (fields, family.samples[0].name)
        return family
    fields, sample_name = known
    family = kind.__new__(kind)
    vars(family).update(fields)
    family.samples = [Sample(sample_name, {}, value, None)]
    return family


def add_sample(family: Metric, labels: dict[str, str], value: float) -> None:
    """`family.add_metric(list(labels.values()), value)` for a gauge, counter or untyped
    family, `labels` given in the family's label order: the same sample, made directly
    (this is the inner loop of the per-device collectors)."""
    name = family.name + "_total" if family.type == "counter" else family.name
    family.samples.append(Sample(name, labels, value, None))
