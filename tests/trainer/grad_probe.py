"""Run under `torchrun --nproc-per-node 2`: one step's gradients three ways, saved to OUT.

- ddp: 2 ranks x batch B through DistributedDataParallel with the counting comm hook;
- staged: the same batches through StagedAllReduce (the MPS path, forced on the CPU);
- single (rank 0 only): 1 rank x batch 2B, i.e. the first batch of a one-rank job.

Usage: torchrun --standalone --nproc-per-node 2 grad_probe.py OUT_DIR MODEL
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from minicluster.core.config import TrainerSettings
from minicluster.track.comm import CountingHookState, counting_allreduce_hook
from minicluster.track.stats import CommStats
from minicluster.trainer.data import build_stream
from minicluster.trainer.models import build_model, gradient_bytes, language_model_loss
from minicluster.trainer.staged import StagedAllReduce

BATCH = 8


def gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.detach().clone() for name, p in model.named_parameters()}


def first_batch(settings: TrainerSettings, batch: int, rank: int, world: int):
    stream = build_stream(
        settings.dataset_size, settings.seq_len, settings.vocab_size, settings.seed,
        batch, rank, world,
    )  # fmt: skip
    return stream.next_batch()


def main(out_dir: Path, model_name: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    settings = TrainerSettings(
        model=model_name, hidden_size=32, layers=2, heads=4, vocab_size=32, seq_len=16,
        dataset_size=256, batch_size=BATCH,
    )  # fmt: skip
    inputs, targets = first_batch(settings, BATCH, rank, world)

    torch.manual_seed(settings.seed)
    model = build_model(settings)
    ddp = DistributedDataParallel(model)
    stats = CommStats()
    ddp.register_comm_hook(CountingHookState(None, stats), counting_allreduce_hook)
    language_model_loss(ddp(inputs), targets).backward()
    result = {"ddp": gradients(model), "grad_bytes": gradient_bytes(model)}
    result["hook"] = {"calls": stats.calls, "bytes": stats.bytes}

    torch.manual_seed(settings.seed)
    model = build_model(settings)
    staged_stats = CommStats()
    staged = StagedAllReduce(model, staged_stats)
    language_model_loss(model(inputs), targets).backward()
    staged.sync()
    result["staged"] = gradients(model)
    result["staged_hook"] = {"calls": staged_stats.calls, "bytes": staged_stats.bytes}

    if rank == 0:
        torch.manual_seed(settings.seed)
        model = build_model(settings)
        inputs, targets = first_batch(settings, 2 * BATCH, 0, 1)
        language_model_loss(model(inputs), targets).backward()
        result["single"] = gradients(model)

    torch.save(result, out_dir / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
