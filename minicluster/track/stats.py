"""What a rank knows about itself: plain host numbers the loop updates and a scrape reads.

No Prometheus call, lock or device sync per step: counters are attributes, the loss stays
on the device in `LossMeter` until a log step reads it, and only the completion of an
asynchronous all-reduce (on gloo's own threads) takes a lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from minicluster.core.metrics import PHASES


@dataclass
class RunInfo:
    """The `trainer_info` labels; read at scrape time, so `watch()` can fill them in."""

    job_id: str
    world_size: int
    backend: str | None = None  # None: asked of torch.distributed at scrape time
    device: str = "cpu"
    model: str = "-"
    parameters: int = 0


@dataclass
class CommStats:
    """Gradient all-reduce totals; `on_latency` feeds the per-bucket histogram."""

    calls: int = 0
    bytes: int = 0
    seconds: float = 0.0
    last_launch: float = 0.0  # perf_counter() of the latest launch
    on_latency: Callable[[float], None] | None = None
    # gloo completes futures on its own worker threads (two by default), so the
    # read-modify-write of `seconds` needs a lock; launches happen on the training thread.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def launched(self, tensor: torch.Tensor) -> float:
        self.calls += 1
        self.bytes += tensor.numel() * tensor.element_size()
        self.last_launch = time.perf_counter()
        return self.last_launch

    def completed(self, started: float) -> None:
        latency = time.perf_counter() - started
        with self._lock:
            self.seconds += latency
        if self.on_latency is not None:
            self.on_latency(latency)


class CollectiveStats:
    """Calls, bytes and seconds per torch.distributed operation (zero-code observation)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.bytes: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def launched(self, op: str, nbytes: int) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        self.bytes[op] = self.bytes.get(op, 0) + nbytes
        self.seconds.setdefault(op, 0.0)

    def add_seconds(self, op: str, seconds: float) -> None:
        with self._lock:
            self.seconds[op] = self.seconds.get(op, 0.0) + seconds

    def snapshot(self) -> dict[str, dict[str, float]]:
        return {
            op: {
                "calls": self.calls[op],
                "bytes": self.bytes[op],
                "seconds": round(self.seconds.get(op, 0.0), 6),
            }
            for op in sorted(self.calls)
        }


@dataclass
class RunStats:
    """One rank's running totals. Counters survive restarts through checkpoints."""

    target_steps: int  # 0: not known
    restarts: int = 0
    steps: int = 0
    samples: int = 0
    epoch: int = 0
    wall_seconds: float = 0.0
    last_step_timestamp: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    comm: CommStats = field(default_factory=CommStats)
    loss: float | None = None  # mean over the last log interval
    checkpoint_seconds: float = 0.0
    # The step and time a restart would resume from: the last checkpoint, or the start
    # of training before there is one (so "time since" measures the work at risk).
    last_checkpoint_step: int = 0
    last_checkpoint_timestamp: float = 0.0
    finished: bool = False
    start_timestamp: float = field(default_factory=time.time)
    exit_code: int | None = None  # set when an observed program ends

    @property
    def progress(self) -> float:
        if self.target_steps <= 0:
            return 0.0
        return min(self.steps / self.target_steps, 1.0)

    def counters(self) -> dict[str, float]:
        """The cumulative values a checkpoint stores so a restart does not count twice."""
        values = {
            "steps": self.steps,
            "samples": self.samples,
            "wall_seconds": self.wall_seconds,
            "allreduce_calls": self.comm.calls,
            "allreduce_bytes": self.comm.bytes,
            "allreduce_seconds": self.comm.seconds,
        }
        values.update({f"phase_{name}": seconds for name, seconds in self.phase_seconds.items()})
        return values

    def restore(self, values: dict[str, float]) -> None:
        self.steps = int(values["steps"])
        self.samples = int(values["samples"])
        self.wall_seconds = float(values["wall_seconds"])
        self.comm.calls = int(values["allreduce_calls"])
        self.comm.bytes = int(values["allreduce_bytes"])
        self.comm.seconds = float(values["allreduce_seconds"])
        for name in PHASES:
            self.phase_seconds[name] = float(values[f"phase_{name}"])


class LossMeter:
    """Sums losses on the device; `.mean()` is the one host sync, done at log steps."""

    def __init__(self) -> None:
        self.total: torch.Tensor | float | None = None
        self.count = 0

    def add(self, loss: torch.Tensor | float) -> None:
        if isinstance(loss, torch.Tensor):
            detached = loss.detach()
            if self.total is None:
                self.total = detached.clone()
            elif isinstance(self.total, torch.Tensor):
                self.total.add_(detached)
            else:
                self.total = detached + self.total
        else:
            self.total = float(loss) if self.total is None else self.total + float(loss)
        self.count += 1

    def mean(self) -> float | None:
        if self.total is None:
            return None
        total = self.total.item() if isinstance(self.total, torch.Tensor) else self.total
        value = float(total) / self.count
        self.total, self.count = None, 0
        return value
