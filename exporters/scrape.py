"""Failure isolation: every collector runs with a time budget and is reported on.

As node_exporter's collector.go: each collector is timed and guarded, and
`node_scrape_collector_{duration_seconds,success}{collector}` say how it went. A collector
that raises, yields something that is not a metric family, or overruns the budget gives
success 0 for that scrape; the others are still served.

Collectors run on worker threads that take them from the scrape's queue; the scrape
thread only waits, so it answers at the budget whatever a collector does. One worker is
enough while collectors are quick (each thread hand-off costs CPU under the GIL); when
every worker has been busy for STALL_SECONDS with work still queued, another one is
started, so a collector hung in a read holds only its own thread. A collector still hung
from an earlier scrape is not started again (at most one stuck thread per collector) and
reports success 0 until it returns.

Scrapes that arrive while one is collecting join it and answer with its result (when
it will finish within their own budget): the numbers are of the same instant, and a
second Prometheus (an HA pair) or a dashboard's refresh costs no second collection.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import Collector, begin_collection, end_collection
from minicluster.exporter.collectors.families import add_sample, labeled

log = logging.getLogger("exporters")

# Collectors normally take well under a millisecond; one this slow may be hung.
STALL_SECONDS = 0.05


@dataclass
class Outcome:
    success: bool
    seconds: float
    families: list[Metric] = field(default_factory=list)
    error: str | None = None


def run_collector(collector: Collector) -> Outcome:
    started = time.perf_counter()
    try:
        families = list(collector.collect())
        for family in families:
            if not isinstance(family, Metric):
                raise TypeError(f"collect() yielded {type(family).__name__}, not a Metric")
    except Exception as exc:  # any failure of one collector is that collector's alone
        return Outcome(False, time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")
    return Outcome(True, time.perf_counter() - started, families)


class DaemonPool:
    """A minimal pool of reusable daemon threads.

    Not concurrent.futures.ThreadPoolExecutor: its threads are joined at interpreter exit,
    so one collector hung in a read would keep the exporter from exiting on SIGTERM.
    """

    def __init__(self, max_workers: int):
        self.max_workers = max_workers
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, task: Callable[[], None]) -> None:
        self._tasks.put(task)
        with self._lock:
            start = False
            if self._idle > 0:
                self._idle -= 1  # an idle worker will take it
            elif self._threads < self.max_workers:
                self._threads += 1
                start = True
            # else: every worker is busy; the task waits for the first one to finish
        if start:
            threading.Thread(target=self._work, name="collector", daemon=True).start()

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            try:
                task()
            except BaseException:  # keep the worker alive for the next scrape
                log.exception("collector worker failed")
            with self._lock:
                self._idle += 1


class _Scrape:
    """The state of one scrape, shared by its workers (guarded by the guard's lock)."""

    def __init__(self, collectors: list[Collector], lock: threading.Lock):
        self.pending = deque(collectors)
        self.running: dict[str, float] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.closed = False
        self.changed = threading.Condition(lock)


class _Flight:
    """A collection in progress, which concurrent scrapes may wait for."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.done = threading.Event()
        self.families: list[Metric] | None = None


class ScrapeGuard:
    def __init__(
        self,
        collectors: list[Collector],
        timeout_seconds: float,
        max_concurrent_scrapes: int = 4,
    ):
        self.collectors = list(collectors)
        self.timeout_seconds = timeout_seconds
        # A worker for every concurrent scrape, plus one per collector that may be hung.
        self._pool = DaemonPool(max_concurrent_scrapes * 2 + len(collectors))
        self._lock = threading.Lock()
        self._hung: Counter[str] = Counter()  # collector -> its runs still going past a budget
        self._failing: set[str] = set()
        self._flight: _Flight | None = None

    def scrape(self, budget_seconds: float | None = None) -> list[Metric]:
        """Every collector's families plus the scrape's own two families.

        Joins a collection already running if it ends within this scrape's budget.
        """
        budget = self.timeout_seconds
        if budget_seconds is not None:
            budget = max(0.05, min(budget, budget_seconds))
        started = time.perf_counter()
        with self._lock:
            flight = self._flight
            joined = flight is not None and flight.deadline <= started + budget
            if not joined:
                flight = self._flight = _Flight(started + budget)
        if joined:
            flight.done.wait(max(0.0, flight.deadline - time.perf_counter()) + 0.05)
            if flight.families is not None:
                return flight.families
            # The collection ended without a result (it raised): collect here instead.
            flight = _Flight(started + budget)
        families: list[Metric] | None = None
        begin_collection()
        try:
            families = self._collect(started, budget)
            return families
        finally:
            end_collection()
            flight.families = families
            with self._lock:
                if self._flight is flight:
                    self._flight = None
            flight.done.set()

    def _collect(self, started: float, budget: float) -> list[Metric]:
        with self._lock:
            hung = set(self._hung)  # Counter keys with a count above zero
        run = _Scrape([c for c in self.collectors if c.name not in hung], self._lock)
        deadline = started + budget
        workers = 0
        with run.changed:
            while run.pending or run.running:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                if run.pending and len(run.running) >= workers:
                    workers += 1  # none yet, or every worker is stuck on a slow collector
                    self._pool.submit(lambda: self._work(run))
                run.changed.wait(min(STALL_SECONDS, remaining))
            run.closed = True
            outcomes = dict(run.outcomes)
            late = time.perf_counter() - started
            for name in run.running:
                outcomes[name] = Outcome(False, late, error=f"exceeded the {budget:g}s budget")
                self._hung[name] += 1
            for collector in run.pending:
                outcomes[collector.name] = Outcome(False, late, error="not started in time")
            run.pending.clear()
        for name in hung:
            outcomes[name] = Outcome(False, 0.0, error="still hung from an earlier scrape")
        return self._families(outcomes)

    def _work(self, run: _Scrape) -> None:
        while True:
            with run.changed:
                if run.closed or not run.pending:
                    return
                collector = run.pending.popleft()
                run.running[collector.name] = time.perf_counter()
            outcome = run_collector(collector)
            with run.changed:
                del run.running[collector.name]
                if run.closed:  # it overran and the scrape went on without it
                    self._hung[collector.name] -= 1
                    if self._hung[collector.name] <= 0:
                        del self._hung[collector.name]
                else:
                    run.outcomes[collector.name] = outcome
                    if not run.pending and not run.running:
                        run.changed.notify_all()  # wake the scrape once, when all are in

    def collect(self) -> Iterator[Metric]:
        """prometheus_client's custom-collector interface, for a CollectorRegistry."""
        return iter(self.scrape())

    def _families(self, outcomes: dict[str, Outcome]) -> list[Metric]:
        duration = labeled(
            GaugeMetricFamily,
            "node_scrape_collector_duration_seconds",
            "node_exporter: Duration of a collector scrape.",
            ("collector",),
        )
        success = labeled(
            GaugeMetricFamily,
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.",
            ("collector",),
        )
        families: list[Metric] = []
        for collector in self.collectors:
            outcome = outcomes[collector.name]
            families.extend(outcome.families)
            labels = {"collector": collector.name}
            add_sample(duration, labels, outcome.seconds)
            add_sample(success, labels, 1.0 if outcome.success else 0.0)
            self._log_change(collector.name, outcome)
        families.extend([duration, success])
        return families

    def _log_change(self, name: str, outcome: Outcome) -> None:
        # Log when a collector starts or stops failing, not at every scrape.
        if outcome.success and name not in self._failing:
            return  # the usual case, decided without the lock (it is checked again under it)
        with self._lock:
            if outcome.success == (name not in self._failing):
                return
            if outcome.success:
                self._failing.discard(name)
            else:
                self._failing.add(name)
        if outcome.success:
            log.info("collector %s works again", name)
        else:
            log.warning("collector %s failed: %s", name, outcome.error)
