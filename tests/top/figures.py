"""Read `top`'s printed figures back into numbers and compare them with Prometheus's answers
sampled while top ran."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable

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
    """The printed `token` equals one of Prometheus's `values` within its printed rounding;
    "-" means Prometheus had no such series."""
    if token == "-":
        assert values == [], f"{what}: top printed '-' but Prometheus answered {values}"
        return
    assert values, f"{what}: top printed {token!r} but Prometheus had no such series"
    value, half = parse(token)
    low, high = min(values), max(values)
    slack = half + 1e-9 * max(1.0, abs(value))
    assert low - slack <= value <= high + slack, (
        f"{what}: top printed {token!r} ({value:g}), Prometheus answered {low:g}..{high:g}"
    )


class Sampler:
    """Asks Prometheus every query over and over in a thread, from a first full round in
    start() to a last full round in stop()."""

    def __init__(self, query: Callable[[str], list[dict]], exprs: dict[str, str]) -> None:
        self.query, self.exprs = query, exprs
        self.answers: dict[str, list[list[dict]]] = {key: [] for key in exprs}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _round(self) -> None:
        for key, expr in self.exprs.items():
            self.answers[key].append(self.query(expr))

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self._round()

    def start(self) -> None:
        self._round()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._round()

    def values(self, key: str) -> list[float]:
        found = [float(sample["value"][1]) for answer in self.answers[key] for sample in answer]
        return [v for v in found if not math.isnan(v)]

    def seen(self, key: str) -> set[float]:
        return set(self.values(key))

    def labels(self, key: str, label: str) -> set[str]:
        return {s["metric"].get(label) for answer in self.answers[key] for s in answer}
