"""Counting DDP's gradient all-reduce, composed with whatever hook the user wants.

DDP hands each gradient bucket to one communication hook, registered once. `attach`
registers `counting_hook`, which records the bucket's launch and its latency (launch to
future completion) around an inner hook: DDP's own `allreduce_hook` (same arithmetic as
the C++ default, so gradients are unchanged) until the user registers theirs, which then
becomes the inner hook instead of failing ("can only be called once"). With the default
hook the bytes are the bucket's; with another (fp16 compression, PowerSGD) they are what
its collectives actually send, captured from torch.distributed while the hook runs.
"""

# No `from __future__ import annotations` here: DDP checks the hook's annotations at
# runtime (`bucket` must be dist.GradBucket itself, not the string "dist.GradBucket").
import functools
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

from minicluster.track import collectives
from minicluster.track.stats import CommStats

ATTACHED = "_minicluster_counting"  # the CountingHookState on a DDP instance we counted


class CountingHookState:
    def __init__(
        self,
        process_group: dist.ProcessGroup | None,
        stats: CommStats,
        inner: Callable | None = None,
        inner_state: Any = None,
    ):
        self.process_group, self.stats = process_group, stats
        self.inner = inner or default_hooks.allreduce_hook
        self.inner_state = process_group if inner is None else inner_state
        self.user_hook = inner is not None

    def use(self, hook: Callable, state: Any) -> None:
        self.inner, self.inner_state, self.user_hook = hook, state, True
        collectives.install_capture()  # count the bytes its collectives really send


def counting_hook(
    state: CountingHookState, bucket: dist.GradBucket
) -> torch.futures.Future[torch.Tensor]:
    stats = state.stats
    if not state.user_hook and not collectives.installed():
        started = stats.launched(bucket.buffer())
        future = default_hooks.allreduce_hook(state.inner_state, bucket)
    else:
        captured = collectives.capture_begin()
        try:
            future = state.inner(state.inner_state, bucket)
        finally:
            collectives.capture_end()
        if captured.bytes:
            stats.calls += 1
            stats.bytes += captured.bytes
            started = stats.last_launch = captured.started
        else:  # nothing went through torch.distributed: count the bucket
            started = stats.launched(bucket.buffer())

    def done(fut: torch.futures.Future[torch.Tensor]) -> torch.Tensor:
        stats.completed(started)
        return fut.value()

    return future.then(done)


# The hook `counting_allreduce_hook` name is what the built-in trainer has always used.
counting_allreduce_hook = counting_hook

_BUILTIN = {
    dist.BuiltinCommHookType.ALLREDUCE: default_hooks.allreduce_hook,
    dist.BuiltinCommHookType.FP16_COMPRESS: default_hooks.fp16_compress_hook,
}


def attached(model: Any) -> CountingHookState | None:
    return getattr(model, ATTACHED, None)


def attach(
    ddp: DistributedDataParallel, stats: CommStats, hook: Callable | None = None, state=None
) -> CountingHookState | None:
    """Count `ddp`'s gradient all-reduce into `stats`; None if a hook was registered before.

    Idempotent: a model counted already (by zero-code observation) is pointed at `stats`.
    """
    counting = attached(ddp)
    if counting is not None:
        counting.stats = stats
        if hook is not None:
            counting.use(hook, state)
        return counting

    if ddp._comm_hooks or getattr(ddp, "mixed_precision", None) is not None:
        warnings.warn(
            "minicluster.track: this DDP model has a comm hook registered already, so its "
            "gradient all-reduce is not counted; call watch(model, hook=...) instead of "
            "registering it yourself",
            stacklevel=3,
        )
        return None
    group = ddp.process_group
    counting = CountingHookState(group, stats)
    DistributedDataParallel.register_comm_hook(ddp, counting, counting_hook)
    setattr(ddp, ATTACHED, counting)
    if hook is not None:
        counting.use(hook, state)

    def register_comm_hook(state: object, hook: Callable) -> None:
        if counting.user_hook:
            raise RuntimeError(
                "register_comm_hook or register_builtin_comm_hook can only be called once."
            )
        ddp._check_comm_hook(hook)
        ddp.logger._set_comm_hook_name(hook.__qualname__)
        ddp._comm_hooks.append((hook, state))
        counting.use(hook, state)

    def register_builtin_comm_hook(comm_hook_type: dist.BuiltinCommHookType) -> None:
        register_comm_hook(group, _BUILTIN[comm_hook_type])

    ddp.register_comm_hook = register_comm_hook
    ddp.register_builtin_comm_hook = register_builtin_comm_hook
    return counting


_ddp_init: Callable | None = None


def patch_ddp(watch: Callable[[DistributedDataParallel], object]) -> None:
    """Every DDP model built from now on is handed to `watch` (which calls `attach`)."""
    global _ddp_init
    if _ddp_init is not None:
        return
    original = _ddp_init = DistributedDataParallel.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a hook from DDP's own init: left alone
            watch(self)

    functools.update_wrapper(__init__, original)
    DistributedDataParallel.__init__ = __init__


def unpatch_ddp() -> None:
    global _ddp_init
    if _ddp_init is not None:
        DistributedDataParallel.__init__ = _ddp_init
        _ddp_init = None
