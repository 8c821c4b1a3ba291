"""The Tracker: one per process, publishing a rank's progress like the built-in trainer.

The hot path (`step`, `done`, `phase`, `loss`) only updates host numbers: no Prometheus
call except the step histogram, no lock, no device sync (the loss is summed on its
device and read at log steps). A scrape reads the numbers when it comes.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torch import nn

from minicluster.core import discovery
from minicluster.core.metrics import PHASES
from minicluster.track import collectives, comm
from minicluster.track.compression import hook_for as compression_hook
from minicluster.track.log import RankLog, compact_json
from minicluster.track.publish import NullSink, PrometheusSink, TrackCollector
from minicluster.track.settings import TrackSettings
from minicluster.track.stats import CommStats, LossMeter, RunInfo, RunStats
from minicluster.track.tls import TlsFileError

clock = time.perf_counter
EXIT_TLS = 2  # a rank whose node's TLS files are unusable: like a bad setting


class _Phase:
    """`with t.phase(name):` adds the block's seconds to that phase.

    For "backward", the part after the last gradient bucket's all-reduce was launched
    is not compute: nothing overlaps it, so it goes to "comm" (what the trainer calls
    exposed communication). Needs a watched DDP model; otherwise all of it is backward.
    """

    __slots__ = ("_calls", "_comm", "_phases", "_started", "name")

    def __init__(self, name: str, phases: dict[str, float], comm_stats: CommStats):
        self.name, self._phases, self._comm = name, phases, comm_stats
        self._started, self._calls = 0.0, 0

    def __enter__(self) -> _Phase:
        self._calls = self._comm.calls
        self._started = clock()
        return self

    def __exit__(self, *exc: object) -> None:
        now = clock()
        elapsed = now - self._started
        if self.name == "backward" and self._comm.calls > self._calls:
            exposed = min(max(0.0, now - self._comm.last_launch), elapsed)
            self._phases["comm"] += exposed
            elapsed -= exposed
        self._phases[self.name] += elapsed


class _Pause:
    __slots__ = ("_started", "_tracker")

    def __init__(self, tracker: Tracker):
        self._tracker, self._started = tracker, 0.0

    def __enter__(self) -> None:
        self._started = clock()

    def __exit__(self, *exc: object) -> None:
        self._tracker._paused += clock() - self._started


def _gradient_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters() if p.requires_grad)


class Tracker:
    """What `track.start()` returns; see the package docstring for the API."""

    def __init__(
        self,
        settings: TrackSettings,
        *,
        total: int | None = None,
        unit: str = "steps",
        metrics: bool = True,
        log: RankLog | None = None,
        stats: RunStats | None = None,
        info: RunInfo | None = None,
        start_fields: dict[str, object] | None = None,
        observer: bool = False,
        require_endpoint: bool = False,
    ):
        self.settings = settings
        self.unit = unit
        self._pid = os.getpid()
        self._own_log = log is None
        log_error = None
        if log is None:
            try:
                log = RankLog(settings.log_dir, settings.node, settings.rank)
            except OSError as exc:  # an unwritable log dir: stdout still has every line
                log_error = f"cannot write {settings.log_dir} ({exc.strerror or exc}); stdout only"
                log = RankLog(None, settings.node, settings.rank)
        self._log = log
        self.stats = stats or RunStats(target_steps=total or 0, restarts=settings.restart_count)
        if total is not None:
            self.stats.target_steps = total
        if not self.stats.last_checkpoint_timestamp:
            self.stats.last_checkpoint_timestamp = time.time()
        self.info = info or RunInfo(job_id=settings.job_id, world_size=settings.world_size)
        self.log_interval = settings.log_interval
        self.linger_seconds = settings.linger_seconds
        self.grad_bytes: int | None = None
        self.comm_counted = False
        self.observer = observer
        self.exit_code: int | None = None
        self._meter = LossMeter()
        self._epoch_known = False
        self._interval_wall, self._interval_samples, self._interval_steps = 0.0, 0, 0
        self._paused = 0.0
        self._finished_logged = False
        self._closed = False
        self._failed = False
        self._ending = False
        self._phases = {
            name: _Phase(name, self.stats.phase_seconds, self.stats.comm) for name in PHASES
        }
        self._pause = _Pause(self)
        self._discovery_file: Path | None = None
        self.sink: NullSink = NullSink()
        for warning in (*settings.warnings, *([log_error] if log_error else [])):
            self._warn(warning)
        if metrics and settings.metrics_port is not None:
            self._serve(require_endpoint)
        self._log.info("start", **(start_fields or self._start_fields()))
        self._step_started = clock()

    # --- set-up ---------------------------------------------------------------------------

    def _start_fields(self) -> dict[str, object]:
        s = self.settings
        fields: dict[str, object] = {"job_id": s.job_id, "world_size": s.world_size}
        if self.stats.target_steps:
            fields["target"] = self.stats.target_steps
        fields.update(unit=self.unit, restart=s.restart_count, pid=self._pid)
        if self.sink.target:
            fields["metrics"] = self.sink.target
        return fields

    def _serve(self, required: bool) -> None:
        s = self.settings
        sink = PrometheusSink(s.metrics_address, s.metrics_port or 0, s.tls)
        collector = TrackCollector(self.stats, self.info, collectives.STATS)
        try:
            sink.start(collector)
        except TlsFileError as exc:
            # Unlike a taken port this stops the rank: serving plain HTTP instead would
            # open the rank to the LAN, and a rank Prometheus cannot scrape is a blind job.
            if required:
                raise  # the trainer prints it as it prints any bad setting
            self._log.error("tls", reason=json.dumps(str(exc)))
            if self._own_log:
                self._log.close()
            raise SystemExit(EXIT_TLS) from None
        except OSError as exc:
            if required:
                raise
            self._warn(f"metrics endpoint {sink.target} unavailable ({exc.strerror or exc})")
            return
        self.sink = sink
        self.stats.comm.on_latency = sink.observe_bucket
        if s.run_dir is None:
            return
        entry = discovery.RankEntry(
            job_id=s.job_id,
            rank=s.rank,
            local_rank=s.local_rank,
            node=s.node,
            target=sink.target,
            pid=self._pid,
        )
        try:
            self._discovery_file = discovery.register(s.run_dir, entry)
        except OSError as exc:
            self._warn(f"cannot register in {s.run_dir} ({exc.strerror or exc}); not discovered")

    def _warn(self, reason: str) -> None:
        self._log.warning("track", reason=json.dumps(reason))

    def adopt(
        self, total: int | None, unit: str, log_interval: int | None, model: str | None
    ) -> None:
        """A second `start()` in the same process (the program under `observe`)."""
        if total is not None:
            self.stats.target_steps = total
            self.unit = unit
            self._log.info("target", target=total, unit=unit)
        if log_interval:
            self.log_interval = log_interval
        if model:
            self.info.model = model

    def take_over(self, stats: RunStats, info: RunInfo | None) -> None:
        """Carry on with another tracker's counters (the trainer run under `observe`)."""
        mine = self.stats
        for name in ("target_steps", "restarts", "steps", "samples", "epoch", "wall_seconds"):
            setattr(mine, name, getattr(stats, name))
        mine.phase_seconds.update(stats.phase_seconds)
        mine.comm.calls, mine.comm.bytes = stats.comm.calls, stats.comm.bytes
        mine.comm.seconds = stats.comm.seconds
        mine.last_checkpoint_step = stats.last_checkpoint_step
        mine.last_checkpoint_timestamp = stats.last_checkpoint_timestamp
        if info is not None:
            self.info.__dict__.update(info.__dict__)

    # --- the loop -------------------------------------------------------------------------

    def step(
        self,
        samples: int | None = None,
        loss: Any = None,
        epoch: int | None = None,
        n: int = 1,
    ) -> None:
        """`n` steps (or tasks) ended now; they ran since the previous call."""
        now = clock()
        seconds = now - self._step_started - self._paused
        s = self.stats
        s.steps += n
        if samples:
            s.samples += samples
            self._interval_samples += samples
        if epoch is not None:
            s.epoch, self._epoch_known = epoch, True
        if loss is not None:
            self._meter.add(loss)
        s.last_step_timestamp = time.time()
        s.wall_seconds += seconds
        self._interval_wall += seconds
        self._interval_steps += n
        self.sink.observe_step(seconds)
        if s.steps % self.log_interval < n or s.steps == s.target_steps:
            self._log_step()
        self._paused = 0.0
        self._step_started = clock()

    def done(self, n: int = 1) -> None:
        """`n` tasks finished (work that is not a training loop)."""
        self.step(n=n)

    def loss(self, value: Any) -> None:
        """A loss (tensor or number); summed where it lives, read at the next log step."""
        self._meter.add(value)

    def phase(self, name: str) -> _Phase:
        try:
            return self._phases[name]
        except KeyError:
            raise ValueError(f"phase {name!r}: use one of {', '.join(PHASES)}") from None

    def record_phase(self, name: str, seconds: float) -> None:
        """Add seconds measured elsewhere to a phase (the staged all-reduce path does)."""
        self.phase(name)
        self.stats.phase_seconds[name] += seconds

    def pause(self) -> _Pause:
        """`with t.pause():` time inside is not step time (evaluation, sleeps, waiting)."""
        return self._pause

    def _log_step(self) -> None:
        s = self.stats
        fields: dict[str, object] = {"step": s.steps}
        if s.target_steps:
            fields["target"] = s.target_steps
        if self.unit != "steps":
            fields["unit"] = self.unit
        if self._epoch_known:
            fields["epoch"] = s.epoch
        loss = self._meter.mean()
        if loss is not None:
            s.loss = loss
            fields["loss"] = f"{loss:.4f}"
        wall = self._interval_wall
        if wall > 0 and self._interval_samples:
            fields["samples_per_second"] = f"{self._interval_samples / wall:.1f}"
        elif wall > 0:
            fields[f"{self.unit}_per_second"] = f"{self._interval_steps / wall:.2f}"
        self._log.info("step", **fields)
        self._interval_wall, self._interval_samples, self._interval_steps = 0.0, 0, 0

    # --- models, communication, checkpoints -------------------------------------------------

    def watch(
        self,
        model: nn.Module,
        hook: Callable | None = None,
        state: Any = None,
        compression: str | None = None,
    ) -> Any:
        """Count a DDP model's gradient all-reduce (composed with `hook` when given).
        `compression` ('fp16', 'bf16', 'powersgd'; see track.compression) picks torch's hook.

        A plain module only fills in the model labels and gradient bytes. Returns the model.
        """
        if compression not in (None, "none"):
            if hook is not None:
                raise TypeError("watch(model): give hook= or compression=, not both")
            group = getattr(model, "process_group", None)
            hook, state = compression_hook(compression, group, self.stats.comm)
        inner = model.module if isinstance(getattr(model, "module", None), nn.Module) else model
        self.info.parameters = sum(p.numel() for p in inner.parameters())
        self.grad_bytes = _gradient_bytes(inner)
        first = next(inner.parameters(), None)
        if first is not None:
            self.info.device = first.device.type
        if self.info.model == "-":
            self.info.model = type(inner).__name__.lower()
        if isinstance(model, comm.DistributedDataParallel):
            if comm.attach(model, self.stats.comm, hook, state) is not None:
                self.comm_counted = True
        elif hook is not None:
            raise TypeError("watch(model, hook=...): the model must be DistributedDataParallel")
        self._step_started = clock()  # steps start after the set-up
        return model

    def comm_counter(self) -> CommStats:
        """The gradient all-reduce totals, for code that all-reduces gradients itself."""
        self.comm_counted = True
        return self.stats.comm

    @contextlib.contextmanager
    def checkpoint(self) -> Iterator[None]:
        """`with t.checkpoint(): save(...)`: its duration, and the step it saved."""
        started = clock()
        yield
        s = self.stats
        s.checkpoint_seconds = clock() - started
        s.last_checkpoint_step = s.steps
        s.last_checkpoint_timestamp = time.time()

    def log(self, word: str = "log", **fields: object) -> None:
        """A line of your own in the merged log: `t.log("eval", accuracy=0.91)`."""
        quoted = {
            key: json.dumps(value) if isinstance(value, str) and " " in value else value
            for key, value in fields.items()
        }
        self._log.info(word.replace(" ", "_") or "log", **quoted)

    # --- the end --------------------------------------------------------------------------

    @property
    def target(self) -> str | None:
        """host:port of the metrics endpoint, None when there is none."""
        return self.sink.target

    def summary(self) -> dict:
        s, counted = self.stats, self.comm_counted
        data: dict = {
            "job_id": self.settings.job_id,
            "rank": self.settings.rank,
            "world_size": self.settings.world_size,
            "steps": s.steps,
            "samples": s.samples,
            "wall_seconds": round(s.wall_seconds, 6),
            "phase_seconds": {k: round(v, 6) for k, v in s.phase_seconds.items()},
            "allreduce_calls": s.comm.calls if counted else None,
            "allreduce_bytes": s.comm.bytes if counted else None,
            "allreduce_seconds": round(s.comm.seconds, 6) if counted else None,
            "grad_bytes": self.grad_bytes,
            "restarts": s.restarts,
            "final_loss": s.loss,
        }
        if self.unit != "steps":
            data["unit"] = self.unit
        if collectives.counting():
            data["collectives"] = collectives.STATS.snapshot()
        if self.exit_code is not None:
            data["exit_status"] = self.exit_code
        return data

    def finish(self) -> None:
        """The work is done: last numbers, and the `summary` line (once)."""
        self.stats.finished = True
        if self._finished_logged or (self.observer and not self._ending):
            return  # under `observe` the summary comes at the end, with the exit status
        self._finished_logged = True
        s = self.stats
        loss = self._meter.mean()
        if loss is not None:
            s.loss = loss
        self._log.info("summary " + compact_json(self.summary()))

    def fail(self, exc: BaseException) -> None:
        """Log the `failed` line (once): the run ends without summary and linger."""
        if self._failed:
            return
        self._failed = True
        self._log.error(
            "failed",
            restart=self.settings.restart_count,
            step=self.stats.steps,
            error=type(exc).__name__,
            reason=json.dumps(str(exc)[:500]),
        )

    def close(self, ok: bool | None = None) -> None:
        """Finish (unless it failed), keep /metrics up `linger` seconds, then unregister."""
        if self._closed or os.getpid() != self._pid:
            return
        if ok is None:  # called from a `finally` while an exception propagates?
            exc = sys.exc_info()[1]
            if exc is not None and not (isinstance(exc, SystemExit) and exc.code in (0, None)):
                if not isinstance(exc, KeyboardInterrupt | SystemExit):
                    self.fail(exc)
                ok = False
        if self.observer and not self._ending:
            # The program still runs; `observe` ends the tracker with its exit status.
            if ok is False:
                self._failed = True
            else:
                self.stats.finished = True
            return
        self._closed = True
        failed = ok is False or (ok is None and self._failed)
        try:
            if not failed:
                self.finish()
                if self.sink.target is not None:
                    linger(self.linger_seconds)
        finally:
            if self._discovery_file is not None:
                discovery.unregister(self._discovery_file)
                self._discovery_file = None
            self.sink.close()
            if self._own_log:
                self._log.close()
            _forget(self)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if exc is not None and not isinstance(exc, KeyboardInterrupt | SystemExit):
            self.fail(exc)
        ok = exc is None or (isinstance(exc, SystemExit) and exc.code in (0, None))
        self.close(ok=ok)

    def end(self, exit_code: int, seconds: float) -> None:
        """`observe`'s end of the program: the `end` line, and close by its exit status."""
        self.exit_code = self.stats.exit_code = exit_code
        self._log.info("end", exit_status=exit_code, seconds=round(seconds, 3))
        self._ending = True
        self.close(ok=exit_code == 0)


def linger(seconds: float) -> None:
    """Wait, but end early on SIGTERM/SIGINT (torchrun or launchd stopping the job)."""
    if seconds <= 0:
        return
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        stop.wait(seconds)
        return
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        stop.wait(seconds)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --- the process's tracker --------------------------------------------------------------------

_current: Tracker | None = None
_exit_hooks_installed = False


def current() -> Tracker | None:
    return _current


def _forget(tracker: Tracker) -> None:
    global _current
    if _current is tracker:
        _current = None


def set_current(tracker: Tracker, manage_exit: bool) -> None:
    global _current
    _current = tracker
    if manage_exit:
        _install_exit_hooks()


def _install_exit_hooks() -> None:
    """Close at interpreter exit; an uncaught exception first marks the run as failed."""
    global _exit_hooks_installed
    if _exit_hooks_installed:
        return
    _exit_hooks_installed = True
    previous = sys.excepthook

    def excepthook(kind, exc, tb):
        tracker = _current
        if tracker is not None and not tracker.observer and os.getpid() == tracker._pid:
            if not isinstance(exc, KeyboardInterrupt):
                tracker.fail(exc)
            tracker._failed = True
        previous(kind, exc, tb)

    sys.excepthook = excepthook
    atexit.register(_at_exit)


def _at_exit() -> None:
    tracker = _current
    if tracker is not None and not tracker.observer:
        tracker.close()


def _after_fork_in_child() -> None:
    # A forked child (a DataLoader worker) is not the rank: it must not print the rank's
    # summary, linger, or delete the rank's discovery file when it exits.
    global _current
    _current = None


os.register_at_fork(after_in_child=_after_fork_in_child)
