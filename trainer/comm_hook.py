"""Counting all-reduce: calls, bytes and per-bucket latency of the gradient all-reduce.

DDP hands each gradient bucket to a communication hook; `counting_allreduce_hook` wraps
DDP's own `allreduce_hook` (same arithmetic, so gradients are unchanged) and records the
bucket's size when it is launched and its latency when its future completes. The staged
path (staged.py) records into the same `CommStats`.
"""

# No `from __future__ import annotations` here: DDP checks the hook's annotations at
# runtime (`bucket` must be dist.GradBucket itself, not the string "dist.GradBucket").
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook


@dataclass
class CommStats:
    """Host-side totals; `on_latency` feeds the per-bucket histogram when metrics are on."""

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


@dataclass
class CountingHookState:
    process_group: dist.ProcessGroup | None
    stats: CommStats


def counting_allreduce_hook(
    state: CountingHookState, bucket: dist.GradBucket
) -> torch.futures.Future[torch.Tensor]:
    started = state.stats.launched(bucket.buffer())
    future = allreduce_hook(state.process_group, bucket)

    def done(fut: torch.futures.Future[torch.Tensor]) -> torch.Tensor:
        state.stats.completed(started)
        return fut.value()

    return future.then(done)
