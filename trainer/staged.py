"""Gradient averaging through CPU memory, for devices gloo cannot read (Apple's MPS).

DDP cannot all-reduce MPS tensors over gloo (pytorch issues 160732, 189853). This path
does what DDP's default hook does (divide by the world size, sum across ranks) on CPU
copies: gradients are flattened into buckets, copied to the CPU ("staging"), all-reduced
("comm"), and copied back ("staging"), and the two are timed apart, which no other tool
reports. On the CPU it is forced only to test it: its gradients must equal DDP's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from minicluster.track import collectives
from minicluster.track.comm import CountingHookState, counting_hook
from minicluster.track.compression import FlatBucket, hook_for
from minicluster.track.stats import CommStats

# DDP's default bucket size (bucket_cap_mb=25): a few large messages beat many small ones.
BUCKET_BYTES = 25 * 1024 * 1024


@dataclass
class SyncTimes:
    staging: float = 0.0
    comm: float = 0.0


def _buckets(params: list[nn.Parameter], limit: int) -> list[list[nn.Parameter]]:
    buckets: list[list[nn.Parameter]] = [[]]
    size = 0
    # Reverse order, like DDP: the last layers' gradients are ready first.
    for param in reversed(params):
        nbytes = param.numel() * param.element_size()
        if buckets[-1] and size + nbytes > limit:
            buckets.append([])
            size = 0
        buckets[-1].append(param)
        size += nbytes
    return buckets


class StagedAllReduce:
    def __init__(
        self,
        model: nn.Module,
        stats: CommStats,
        process_group: dist.ProcessGroup | None = None,
        bucket_bytes: int = BUCKET_BYTES,
        compression: str = "none",
    ):
        self.model, self.stats, self.group = model, stats, process_group
        self.world_size = dist.get_world_size(process_group)
        params = [p for p in model.parameters() if p.requires_grad]
        self.buckets = _buckets(params, bucket_bytes)
        # A compression hook runs on each CPU bucket inside the counting hook, as under DDP.
        chosen = hook_for(compression, process_group, stats)
        self.counting = None
        if chosen is not None:
            self.counting = CountingHookState(process_group, stats)
            self.counting.use(*chosen)
        self._broadcast_initial_state()

    def _broadcast_initial_state(self) -> None:
        """Start every rank from rank 0's weights, as DDP does when it wraps a model."""
        with torch.no_grad():
            for tensor in [*self.model.parameters(), *self.model.buffers()]:
                staged = tensor.detach().to("cpu", copy=True)
                dist.broadcast(staged, src=0, group=self.group)
                tensor.copy_(staged)

    def _hooked(self, flats: list[torch.Tensor]) -> None:
        """The compression hook on every bucket (it divides by the world size itself)."""
        last = len(flats) - 1
        futures = [
            counting_hook(
                self.counting, FlatBucket(i, flat, [p.shape for p in self.buckets[i]], i == last)
            )
            for i, flat in enumerate(flats)
        ]
        for flat, future in zip(flats, futures, strict=True):
            result = future.wait()
            if result.data_ptr() != flat.data_ptr():
                flat.copy_(result)

    def sync(self) -> SyncTimes:
        """Average `.grad` across ranks in place; return staging and comm seconds."""
        times = SyncTimes()
        started = time.perf_counter()
        flats = []
        for bucket in self.buckets:
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in bucket]
            flats.append(torch.cat([g.reshape(-1) for g in grads]).to("cpu"))
        staged = time.perf_counter()
        times.staging += staged - started

        pending = []
        if self.counting is not None:
            self._hooked(flats)
            flats_plain = []
        else:
            flats_plain = flats
        # Counted here as gradient all-reduce; under `observe` not again as a collective.
        collectives.capture_begin()
        try:
            for flat in flats_plain:
                flat.div_(self.world_size)  # before the sum, as DDP's hook does
                launched = self.stats.launched(flat)
                work = dist.all_reduce(flat, group=self.group, async_op=True)
                pending.append((work, launched))
        finally:
            collectives.capture_end()
        for work, launched in pending:
            work.wait()
            self.stats.completed(launched)
        reduced = time.perf_counter()
        times.comm += reduced - staged

        with torch.no_grad():
            for bucket, flat in zip(self.buckets, flats, strict=True):
                offset = 0
                for param in bucket:
                    chunk = flat[offset : offset + param.numel()].view_as(param)
                    if param.grad is None:
                        param.grad = chunk.to(param.device, copy=True)
                    else:
                        param.grad.copy_(chunk)
                    offset += param.numel()
        times.staging += time.perf_counter() - reduced
        return times
