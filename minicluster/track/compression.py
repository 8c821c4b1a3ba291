"""Gradient compression for slow links: torch's DDP communication hooks by name.

    none      DDP's own all-reduce of float32 buckets
    fp16      fp16_compress_hook: buckets cast to float16 (half the bytes), summed, cast back
    bf16      bf16_compress_hook: the same in bfloat16 (float32's range, fewer mantissa bits)
    powersgd  powerSGD_hook, rank 1 with error feedback: each 2-D gradient (n x m) travels
              as two factors P (n x r) and Q (m x r); 1-D ones (biases) travel uncompressed.
              The first START_POWERSGD_ITER steps run plain all-reduce, as PowerSGD's
              authors recommend, so training settles before the approximation starts.

`hook_for(name, group)` returns (hook, state) for DDP's register_comm_hook, or None for
`none`; Tracker.watch(model, compression=name) registers it inside the counting hook, so
trainer_allreduce_bytes_total counts what the compressed collectives send.

`FlatBucket` lets code that all-reduces flattened gradients itself (the staged path on
Apple's MPS) run the same hooks: a hook only reads the bucket's buffer, index, gradients
(views into the buffer) and whether it is the step's last bucket.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook

from minicluster.track import collectives
from minicluster.track.stats import CommStats

CHOICES = ("none", "fp16", "bf16", "powersgd")
POWERSGD_RANK = 1
START_POWERSGD_ITER = 10


def hook_for(
    name: str, process_group: dist.ProcessGroup | None = None, stats: CommStats | None = None
) -> tuple[Any, Any] | None:
    """(hook, state) for `name`; None for `none`. ValueError names the choices.

    With `stats`, PowerSGD's later collectives (launched from future callbacks, on gloo's
    threads, where the counting hook's capture does not reach) add their bytes there."""
    if name == "none":
        return None
    if name == "fp16":
        return default_hooks.fp16_compress_hook, process_group
    if name == "bf16":
        return default_hooks.bf16_compress_hook, process_group
    if name == "powersgd":
        state = powerSGD_hook.PowerSGDState(
            process_group=process_group,
            matrix_approximation_rank=POWERSGD_RANK,
            start_powerSGD_iter=START_POWERSGD_ITER,
            use_error_feedback=True,
            warm_start=True,
        )
        hook = powerSGD_hook.powerSGD_hook if stats is None else counted_powersgd(stats)
        return hook, state
    raise ValueError(f"grad compression {name!r}: one of {', '.join(CHOICES)}")


def counted_powersgd(stats: CommStats):
    """powerSGD_hook whose chained callbacks count their collectives' bytes into `stats`.

    The hook launches the P and Q all-reduces from callbacks of earlier futures; those run
    on whichever thread completes the future (gloo's own), where the counting hook's
    thread-local capture is absent. So every callback registered while the hook builds its
    chain runs under a capture of its own (collectives.capture_callbacks), added to `stats`
    when it returns."""

    def count(nbytes: int) -> None:
        stats.bytes += nbytes

    def hook(state: powerSGD_hook.PowerSGDState, bucket):
        collectives.install_capture()
        with collectives.capture_callbacks(count):
            return powerSGD_hook.powerSGD_hook(state, bucket)

    return hook


def powersgd_bytes(shapes: list[torch.Size], rank: int = POWERSGD_RANK, itemsize: int = 4) -> int:
    """Bytes one bucket of these gradient shapes sends per compressed step: P and Q of
    every matrix worth compressing, the rest as is (powerSGD_hook's own rule)."""
    total = 0
    for shape in shapes:
        numel = shape.numel()
        if len(shape) > 1:
            rows, cols = shape[0], numel // shape[0]
            r = min(rows, cols, rank)
            if r * (rows + cols) * 2 < numel:  # min_compression_rate 2
                total += r * (rows + cols) * itemsize
                continue
        total += numel * itemsize
    return total


class FlatBucket:
    """A flattened gradient bucket that DDP hooks accept in place of dist.GradBucket."""

    def __init__(self, index: int, buffer: torch.Tensor, shapes: list[torch.Size], last: bool):
        self._index, self._buffer, self._last = index, buffer, last
        self._views, offset = [], 0
        for shape in shapes:
            self._views.append(buffer[offset : offset + shape.numel()].view(shape))
            offset += shape.numel()

    def index(self) -> int:
        return self._index

    def buffer(self) -> torch.Tensor:
        return self._buffer

    def gradients(self) -> list[torch.Tensor]:
        return self._views

    def is_last(self) -> bool:
        return self._last

    def set_buffer(self, tensor: torch.Tensor) -> None:
        self._buffer.copy_(tensor)
