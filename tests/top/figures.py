"""Read `top`'s printed figures back into numbers and compare them with what Prometheus
answered at every instant while top ran."""

from __future__ import annotations

import itertools
import math
import re
import time

import requests

SCALES = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "%": 0.01, "ms": 1e-3, "": 1.0}
PRESSURE = {"ok": 1, "warn": 2, "crit": 4}
DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse(token: str) -> tuple[float, float]:
    """(value, half the printed resolution) of a figure as top prints it."""
    if token in PRESSURE:
        return PRESSURE[token], 0.0
    duration = DURATION.fullmatch(token)
    if token and duration and any(duration.groups()):
        hours, minutes, seconds = (int(g) if g else 0 for g in duration.groups())
        # "13h05m" is rounded to the minute, "5m03s" and "45s" to the second.
        resolution = 60 if hours else 1
        return hours * 3600 + minutes * 60 + seconds, resolution / 2 + 0.5
    match = re.fullmatch(r"(-?\d+)(?:\.(\d+))?(k|M|G|T|%|ms|)", token)
    assert match, f"{token!r} is not a figure top prints"
    whole, decimals, unit = match.groups()
    scale = SCALES[unit]
    value = float(f"{whole}.{decimals or 0}") * scale
    return value, 0.5 * 10 ** -len(decimals or "") * scale


def check_figure(token: str, values: list[float], what: str) -> None:
    """The printed `token` is one of Prometheus's `values` (in time order), rounded as top
    prints it; "-" means Prometheus had no such series."""
    if token == "-":
        assert values == [], f"{what}: top printed '-' but Prometheus answered {values}"
        return
    assert values, f"{what}: top printed {token!r} but Prometheus had no such series"
    value, half = parse(token)
    slack = half + 1e-9 * max(1.0, abs(value))
    # A rate() computed at query time moves with the evaluation instant itself, so top's
    # instant may fall between two steps of the span: between their values is "at that
    # moment" too.
    steps = list(itertools.pairwise(values)) or [(values[0], values[0])]
    assert any(min(a, b) - slack <= value <= max(a, b) + slack for a, b in steps), (
        f"{what}: top printed {token!r} ({value:g}), Prometheus answered {sorted(set(values))[:20]}"
    )


class Sampler:
    """Every value Prometheus gives each query at any instant of a time span: from start()
    to stop(), each query is evaluated over the span with a 0.1 s step, so whatever instant
    top evaluated its frame at is among them."""

    STEP = 0.1

    def __init__(self, url: str, exprs: dict[str, str]) -> None:
        self.url, self.exprs = url, exprs
        self.answers: dict[str, list[dict]] = {}
        self.span = (0.0, 0.0)

    def start(self) -> None:
        self.span = (time.time() - self.STEP, 0.0)

    def stop(self) -> None:
        self.span = (self.span[0], time.time() + self.STEP)
        for key, expr in self.exprs.items():
            self.answers[key] = self._range(expr)

    def _range(self, expr: str) -> list[dict]:
        start, end = self.span
        body = requests.post(
            f"{self.url}/api/v1/query_range",
            data={"query": expr, "start": start, "end": end, "step": self.STEP},
            timeout=30,
        ).json()
        assert body["status"] == "success", f"{expr!r}: {body}"
        return body["data"]["result"]

    def values(self, key: str) -> list[float]:
        found = [float(v) for series in self.answers[key] for _, v in series["values"]]
        return [v for v in found if not math.isnan(v)]

    def seen(self, key: str) -> set[float]:
        return set(self.values(key))

    def labels(self, key: str, label: str) -> set[str]:
        return {series["metric"].get(label) for series in self.answers[key]}
