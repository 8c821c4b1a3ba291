"""How soon Prometheus had the job's first trainer sample.

The demo promises that a job shows up in Prometheus within seconds (short scrape and
service-discovery refresh intervals), and measures it on every run rather than assuming
it, from two moments: the launch, and the first rank's `start` line (the rank is up and
registered for discovery; before it, the time goes to starting Python and importing
torch, which on a busy 2-core machine alone can take 10-20 s).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from minicluster.core.logformat import parse_line
from minicluster.core.promapi import Prometheus, PrometheusError


def first_rank_start(merged_log: Path) -> float | None:
    """Unix time of the first `start` line any rank wrote to the job's merged log."""
    try:
        lines = merged_log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    starts = [
        line.timestamp
        for line in map(parse_line, lines)
        if line is not None and line.message.startswith("start ")
    ]
    return min(starts, default=None)


class FirstSampleWatch:
    """Polls Prometheus from a thread until a `trainer` series of the job exists."""

    def __init__(self, prom: Prometheus, job_id: str, interval: float = 0.5) -> None:
        self.prom, self.job_id, self.interval = prom, job_id, interval
        self.started = time.monotonic()
        self.seconds: float | None = None  # after the launch
        self.found_at: float | None = None  # wall-clock time it was found
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="first-sample", daemon=True)

    def _found(self) -> bool:
        query = f'count(up{{job="trainer", job_id="{self.job_id}"}} == 1)'
        try:
            return bool(self.prom.query(query, time.time()))
        except PrometheusError:
            return False

    def _poll(self) -> None:
        while not self._stop.is_set():
            if self._found():
                self.seconds = time.monotonic() - self.started
                self.found_at = time.time()
                return
            self._stop.wait(self.interval)

    def seconds_after(self, moment: float | None) -> float | None:
        """Seconds from `moment` (unix time) to the first sample."""
        if self.found_at is None or moment is None:
            return None
        return self.found_at - moment

    def __enter__(self) -> FirstSampleWatch:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
