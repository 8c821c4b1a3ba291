"""How long after the job started Prometheus had its first trainer sample.

The demo promises that a job shows up in Prometheus within seconds (short scrape and
service-discovery refresh intervals in the local profile); this measures it on every
run rather than assuming it.
"""

from __future__ import annotations

import threading
import time

from minicluster.report.prom import Prometheus, PrometheusError


class FirstSampleWatch:
    """Polls Prometheus from a thread until a `trainer` series of the job exists."""

    def __init__(self, prom: Prometheus, job_id: str, interval: float = 0.5) -> None:
        self.prom, self.job_id, self.interval = prom, job_id, interval
        self.started = time.monotonic()
        self.seconds: float | None = None
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
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> FirstSampleWatch:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
