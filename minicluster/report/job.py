"""Which job a report is about: its record from run-job and the time window it ran in.

run-job writes runs/<job_id>.json with `started_at`, `finished_at` and the summary. When
that file is missing (the job was started by hand under torchrun, or on another
machine), the window is found in Prometheus instead: the span over which any rank of
the job was scraped, searched over the last `lookback` seconds.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from minicluster.core.metrics import STEPS, TRAINER
from minicluster.core.promapi import Prometheus

# Prometheus answers at most 11,000 points per series.
MAX_POINTS = 11_000


class ReportError(Exception):
    """The report cannot be made; the message says why and what to check."""


@dataclass(frozen=True)
class JobWindow:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def padded(self, before: float, after: float) -> JobWindow:
        return JobWindow(self.start - before, self.end + after)


def load_record(runs_dir: Path, job_id: str) -> dict | None:
    path = runs_dir / f"{job_id}.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError as exc:
        raise ReportError(f"{path}: not valid JSON ({exc})") from None
    return record if isinstance(record, dict) else None


def _iso_seconds(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def window_from_record(record: dict) -> JobWindow | None:
    start = _iso_seconds(record.get("started_at"))
    end = _iso_seconds(record.get("finished_at"))
    if start is None or end is None or end < start:
        return None
    return JobWindow(start, end)


def selector(job_id: str) -> str:
    """The label matchers of a job's trainer series (job_id is checked by the trainer to
    be letters, digits, '.', '_' and '-', so it needs no escaping beyond quotes)."""
    return f'{TRAINER}, job_id="{job_id}"'


def window_from_prometheus(
    prom: Prometheus, job_id: str, lookback: float, now: float | None = None
) -> JobWindow:
    now = time.time() if now is None else now
    step = max(1.0, math.ceil(lookback / MAX_POINTS))
    found = prom.query_range(f"count({STEPS}{{{selector(job_id)}}})", now - lookback, now, step)
    times = [t for series in found for t in series.times]
    if not times:
        hours = lookback / 3600
        raise ReportError(
            f"job {job_id!r}: no runs/{job_id}.json and no trainer series with that job_id in "
            f"Prometheus over the last {hours:g} h (is --prometheus the right server?)"
        )
    return JobWindow(min(times), max(times))
