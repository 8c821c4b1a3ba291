"""One training step, its phases timed on the host clock.

Phases: data (batch to device), forward (model and loss), backward, comm (gradient
all-reduce), optimizer (step and zero_grad), staging (device<->CPU copies of the staged
path). Under DDP the all-reduce runs inside backward, bucket by bucket, overlapping it;
comm is then the sum of bucket latencies from the counting hook and is not subtracted from
backward. On MPS/CUDA the host clock sees kernel launches, except where a copy to the CPU
waits for the device (the staged path does, every step).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from trainer.data import BatchStream
from trainer.metrics import RunStats
from trainer.models import language_model_loss
from trainer.staged import StagedAllReduce


class TrainStep:
    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        stream: BatchStream,
        device: torch.device,
        stats: RunStats,
        staged: StagedAllReduce | None,
    ):
        self.model, self.optimizer, self.stream = model, optimizer, stream
        self.device, self.stats, self.staged = device, stats, staged

    def __call__(self) -> torch.Tensor:
        """Run one step; return the loss, still on the device (no sync)."""
        phases, comm = self.stats.phase_seconds, self.stats.comm
        clock = time.perf_counter

        t0 = clock()
        inputs, targets = self.stream.next_batch()
        inputs = inputs.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        t1 = clock()
        loss = language_model_loss(self.model(inputs), targets)
        t2 = clock()
        comm_before = comm.seconds
        loss.backward()
        t3 = clock()
        if self.staged is not None:
            times = self.staged.sync()
            phases["staging"] += times.staging
            phases["comm"] += times.comm
        else:
            phases["comm"] += comm.seconds - comm_before
        t4 = clock()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        t5 = clock()

        phases["data"] += t1 - t0
        phases["forward"] += t2 - t1
        phases["backward"] += t3 - t2
        phases["optimizer"] += t5 - t4
        return loss
