"""A small DDP training script with track lines: `torchrun ... ddp_track.py STEPS`."""

import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from minicluster import track

BATCH = 4


def main(steps: int) -> None:
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    grad_bytes = sum(p.numel() * p.element_size() for p in net.parameters())
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    with track.start(total_steps=steps) as t:
        model = t.watch(DistributedDataParallel(net))
        t.log("model", grad_bytes=grad_bytes)
        for _ in range(steps):
            with t.phase("data"):
                x, y = torch.randn(BATCH, 32), torch.randn(BATCH, 4)
            with t.phase("forward"):
                loss = (model(x) - y).square().mean()
            with t.phase("backward"):
                loss.backward()
            with t.phase("optimizer"):
                optimizer.step()
                optimizer.zero_grad()
            t.step(samples=BATCH, loss=loss)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]))
