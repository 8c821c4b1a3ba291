"""One training step, its phases timed on the host clock.

Phases: data (batch to device), forward (model and loss), backward, comm (gradient
all-reduce), optimizer (step and zero_grad), staging (device<->CPU copies of the staged
path). They partition the step, so their sum is the step time and comm / step is the
communication fraction.

Under DDP the all-reduce runs inside backward, bucket by bucket, overlapped with the
gradients still being computed. Only the part nothing overlaps costs step time: from the
launch of the last bucket (all gradients are ready then) to the end of backward. That is
the comm phase, and it is taken out of backward. The total latency of all buckets,
overlapped or not, is trainer_allreduce_seconds_total. Without the counting hook
(`--no-metrics`) nothing marks the launch and the all-reduce stays inside backward.

On MPS/CUDA the host clock sees kernel launches, except where a copy to the CPU waits
for the device (the staged path does, every step).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from minicluster.trainer.data import BatchStream
from minicluster.trainer.metrics import RunStats
from minicluster.trainer.models import language_model_loss
from minicluster.trainer.staged import StagedAllReduce


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
        calls_before = comm.calls
        loss.backward()
        t3 = clock()
        exposed_comm = 0.0
        if self.staged is not None:
            times = self.staged.sync()
            phases["staging"] += times.staging
            phases["comm"] += times.comm
        elif comm.calls > calls_before:  # the counting hook saw this step's buckets
            exposed_comm = max(0.0, t3 - comm.last_launch)
            phases["comm"] += exposed_comm
        t4 = clock()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        t5 = clock()

        phases["data"] += t1 - t0
        phases["forward"] += t2 - t1
        phases["backward"] += t3 - t2 - exposed_comm
        phases["optimizer"] += t5 - t4
        return loss
