"""One training step, its phases timed through the tracker.

Phases: data (batch to device), forward (model and loss), backward, comm (gradient
all-reduce), optimizer (step and zero_grad), staging (device<->CPU copies of the staged
path). They partition the step, so their sum is the step time and comm / step is the
communication fraction.

Under DDP the all-reduce runs inside backward, bucket by bucket, overlapped with the
gradients still being computed. Only the part nothing overlaps costs step time: from the
launch of the last bucket (all gradients are ready then) to the end of backward. The
tracker's backward phase moves that part to comm (minicluster.track). The total latency
of all buckets, overlapped or not, is trainer_allreduce_seconds_total. Without the
counting hook (`--no-metrics`) nothing marks the launch and the all-reduce stays inside
backward.

On MPS/CUDA the host clock sees kernel launches, except where a copy to the CPU waits
for the device (the staged path does, every step).
"""

from __future__ import annotations

import torch
from torch import nn

from minicluster.track.tracker import Tracker
from minicluster.trainer.data import BatchStream
from minicluster.trainer.models import language_model_loss
from minicluster.trainer.staged import StagedAllReduce


class TrainStep:
    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        stream: BatchStream,
        device: torch.device,
        tracker: Tracker,
        staged: StagedAllReduce | None,
    ):
        self.model, self.optimizer, self.stream = model, optimizer, stream
        self.device, self.track, self.staged = device, tracker, staged

    def __call__(self) -> torch.Tensor:
        """Run one step; return the loss, still on the device (no sync)."""
        t = self.track
        with t.phase("data"):
            inputs, targets = self.stream.next_batch()
            inputs = inputs.to(self.device, non_blocking=True)
            targets = targets.to(self.device, non_blocking=True)
        with t.phase("forward"):
            loss = language_model_loss(self.model(inputs), targets)
        with t.phase("backward"):
            loss.backward()
        if self.staged is not None:
            times = self.staged.sync()
            t.record_phase("staging", times.staging)
            t.record_phase("comm", times.comm)
        with t.phase("optimizer"):
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return loss
