"""The all-reduce sweep: one gloo all-reduce per size, from 4 KB to 256 MB, timed like
nccl-tests' `all_reduce_perf`.

Per size: `warmup` untimed calls, a barrier, then `iters` timed calls back to back; the
time per call is the slowest rank's mean (every rank's clock is read, the maximum is
all-reduced), because the collective is only as fast as its slowest member.

    algbw = size / time
    busbw = algbw x 2(n-1)/n   (core.metrics.busbw_factor: what each rank sends in a ring)

Run under torchrun on every node (`minicluster bench --allreduce` does that); rank 0
prints one `sweep <json>` line per size and a `sweep-done` line. The loop itself takes the
all-reduce and the clock as arguments, so its arithmetic is tested without a network.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from minicluster.core.metrics import busbw_factor

KB, MB = 1 << 10, 1 << 20
SIZES = tuple(4 * KB * 4**i for i in range(9))  # 4 KB, 16 KB, ... 256 MB (x4 steps)
LINE = "sweep "
DONE = "sweep-done"
# Timed calls per size: enough to average out a few ms of jitter on small sizes, few
# enough that 256 MB over 1 GbE stays a few seconds.
TIMED_BYTES = 512 * MB
MIN_ITERS, MAX_ITERS = 2, 50


@dataclass(frozen=True)
class SweepRow:
    size: int  # bytes per call
    count: int  # float32 elements per call
    calls: int  # timed calls
    bytes: int  # size x calls: what the timed calls all-reduced, per rank
    seconds: float  # per call, slowest rank
    algbw: float  # bytes/s
    busbw: float  # bytes/s
    world_size: int


def iterations(size: int, override: int | None = None) -> int:
    if override:
        return override
    return max(MIN_ITERS, min(MAX_ITERS, TIMED_BYTES // size))


def row(size: int, calls: int, elapsed: float, world_size: int) -> SweepRow:
    seconds = elapsed / calls
    algbw = size / seconds if seconds > 0 else 0.0
    return SweepRow(
        size=size,
        count=size // 4,
        calls=calls,
        bytes=size * calls,
        seconds=seconds,
        algbw=algbw,
        busbw=algbw * busbw_factor(world_size),
        world_size=world_size,
    )


def sweep(
    sizes: Iterable[int],
    allreduce: Callable[[int], None],
    slowest: Callable[[float], float],
    world_size: int,
    warmup: int = 2,
    iters: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
    barrier: Callable[[], None] = lambda: None,
) -> Iterable[SweepRow]:
    """Yield one row per size. `allreduce(size)` runs one call on a `size`-byte buffer;
    `slowest(seconds)` returns the maximum of that value over the ranks."""
    for size in sizes:
        for _ in range(warmup):
            allreduce(size)
        calls = iterations(size, iters)
        barrier()
        started = clock()
        for _ in range(calls):
            allreduce(size)
        elapsed = slowest(clock() - started)
        yield row(size, calls, elapsed, world_size)


def parse_sizes(text: str) -> list[int]:
    """'4K,64M' or '4096'; K, M, G are powers of 1024. Multiples of 4 (float32)."""
    units = {"K": KB, "M": MB, "G": 1 << 30}
    sizes = []
    for word in filter(None, (w.strip().upper().removesuffix("B") for w in text.split(","))):
        factor = units.get(word[-1], 1)
        number = word[:-1] if word[-1] in units else word
        try:
            size = int(number) * factor
        except ValueError:
            raise ValueError(f"not a size: {word!r} (e.g. 4K, 64M, 4096)") from None
        if size <= 0 or size % 4:
            raise ValueError(f"size {word!r} must be a positive multiple of 4 bytes")
        sizes.append(size)
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minicluster.bench.sweep")
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=None, help="timed calls per size")
    parser.add_argument("--timeout-seconds", type=int, default=300)
    args = parser.parse_args(argv)
    sizes = parse_sizes(args.sizes)

    from datetime import timedelta

    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    if "RANK" in os.environ:
        dist.init_process_group("gloo", timeout=timedelta(seconds=args.timeout_seconds))
    else:
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    world, rank = dist.get_world_size(), dist.get_rank()
    buffer = torch.ones(max(sizes) // 4, dtype=torch.float32)

    def allreduce(size: int) -> None:
        dist.all_reduce(buffer[: size // 4])

    def slowest(seconds: float) -> float:
        value = torch.tensor([seconds], dtype=torch.float64)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return float(value.item())

    try:
        for result in sweep(
            sizes, allreduce, slowest, world, args.warmup, args.iters, barrier=dist.barrier
        ):
            if rank == 0:
                print(LINE + json.dumps(asdict(result)), flush=True)
        if rank == 0:
            print(DONE, flush=True)
    finally:
        dist.destroy_process_group()
    return 0


def parse_rows(lines: Iterable[str]) -> list[SweepRow]:
    """The rows rank 0 printed, from any output that contains its lines."""
    rows = []
    for text in lines:
        at = text.find(LINE)
        if at >= 0 and text[at + len(LINE) :].lstrip().startswith("{"):
            rows.append(SweepRow(**json.loads(text[at + len(LINE) :])))
    return rows


if __name__ == "__main__":
    sys.exit(main())
