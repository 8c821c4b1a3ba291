"""Counting torch.distributed collectives: small wrappers around the module functions.

`install()` replaces each function in COLLECTIVE_OPS, in both namespaces user code reaches
it by (`torch.distributed` and `torch.distributed.distributed_c10d`, whose own helpers such
as `all_gather_object` call it), by a wrapper that records calls, the input payload's bytes
and the latency: around the call when it is synchronous, launch to completion of the
work's future when `async_op=True`. `uninstall()` restores the originals.

While DDP's counting hook runs a user's hook (`capture_begin`/`capture_end`, per thread),
collectives count towards the gradient all-reduce instead, so nothing counts twice and
the bytes are the ones actually sent (half the bucket under fp16 compression).
`capture_callbacks` carries that capture into the future callbacks a hook chains (where
PowerSGD launches its later collectives).

Blind spots: code that bound a function before `install()` (`from torch.distributed
import all_reduce` at import time of a module loaded earlier), ProcessGroup methods
called directly, functional collectives, and C++ extensions.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed import distributed_c10d

from minicluster.core.metrics import COLLECTIVE_OPS
from minicluster.track.stats import CollectiveStats

# Which argument carries this rank's input payload: (parameter name, is a list of tensors).
_PAYLOAD = {
    "all_reduce": ("tensor", False),
    "broadcast": ("tensor", False),
    "all_gather": ("tensor", False),
    "all_gather_into_tensor": ("input_tensor", False),
    "reduce_scatter": ("input_list", True),
    "reduce_scatter_tensor": ("input", False),
    "barrier": (None, False),
}

STATS = CollectiveStats()
_local = threading.local()
_originals: dict[str, Callable] = {}
_counting = False  # count collectives outside DDP hooks (zero-code observation)


@dataclass
class Capture:
    bytes: int = 0
    started: float = 0.0


def _tensor_bytes(value: object) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, Iterable):
        return sum(_tensor_bytes(item) for item in value)
    return 0


def _argument(args: tuple, kwargs: dict, name: str, position: int, default=None):
    if name in kwargs:
        return kwargs[name]
    return args[position] if position < len(args) else default


def _wrap(op: str, original: Callable) -> Callable:
    parameters = list(inspect.signature(original).parameters)
    payload_name, _ = _PAYLOAD[op]
    payload_at = parameters.index(payload_name) if payload_name else -1
    async_at = parameters.index("async_op") if "async_op" in parameters else -1
    clock = time.perf_counter

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        capture = getattr(_local, "capture", None)
        if capture is None and not _counting:
            return original(*args, **kwargs)
        nbytes = (
            _tensor_bytes(_argument(args, kwargs, payload_name, payload_at))
            if payload_at >= 0
            else 0
        )
        started = clock()
        if capture is not None:
            if not capture.bytes:
                capture.started = started
            capture.bytes += nbytes
            return original(*args, **kwargs)
        work = original(*args, **kwargs)
        STATS.launched(op, nbytes)
        if async_at >= 0 and _argument(args, kwargs, "async_op", async_at, False):
            if work is not None:
                _time_async(op, work, started)
        else:
            STATS.add_seconds(op, clock() - started)
        return work

    wrapper.__wrapped_by_minicluster__ = True
    return wrapper


def _time_async(op: str, work, started: float) -> None:
    try:
        future = work.get_future()
    except (RuntimeError, AttributeError):
        return  # this backend has no future for this op: calls and bytes only
    future.then(lambda _: STATS.add_seconds(op, time.perf_counter() - started))


def _set(name: str, function: Callable) -> None:
    setattr(distributed_c10d, name, function)
    if getattr(dist, name, None) is not None:
        setattr(dist, name, function)


def _patch(ops: Iterable[str]) -> None:
    for op in ops:
        if op in _originals or not hasattr(distributed_c10d, op):
            continue
        original = getattr(distributed_c10d, op)
        _originals[op] = original
        _set(op, _wrap(op, original))


def install(ops: Iterable[str] = COLLECTIVE_OPS) -> None:
    """Count these collectives from now on (idempotent)."""
    global _counting
    _patch(ops)
    _counting = True


def install_capture() -> None:
    """Only what a DDP hook's all-reduce needs to be captured; counts nothing else."""
    _patch(("all_reduce", "all_gather", "all_gather_into_tensor", "broadcast"))


def installed() -> bool:
    return bool(_originals)


def counting() -> bool:
    return _counting


def uninstall() -> None:
    global _counting
    for op, original in _originals.items():
        _set(op, original)
    _originals.clear()
    _counting = False


def capture_begin() -> Capture:
    capture = Capture()
    _local.capture = capture
    return capture


def capture_end() -> None:
    _local.capture = None


@contextlib.contextmanager
def capture_callbacks(count: Callable[[int], None]) -> Iterator[None]:
    """Within the block, every callback registered with a future's `then` runs under a
    capture of its own; when it returns, its bytes go to `count(nbytes)` and the thread's
    previous capture is back.

    A hook may launch collectives from callbacks of earlier futures (PowerSGD's P and Q
    all-reduces). Those run on whichever thread completes the future, gloo's own threads,
    where the thread-local capture of the hook's caller is absent, so without this they
    would count as plain collectives or not at all. Hence `torch._C.Future.then` (which
    `torch.futures.Future.then` calls) is patched for the block's duration only."""
    then = torch._C.Future.then

    def carry(callback: Callable) -> Callable:
        def run(future):
            previous = getattr(_local, "capture", None)
            captured = capture_begin()
            try:
                return callback(future)
            finally:
                _local.capture = previous
                count(captured.bytes)

        return run

    torch._C.Future.then = lambda future, callback: then(future, carry(callback))
    try:
        yield
    finally:
        torch._C.Future.then = then
