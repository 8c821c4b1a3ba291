"""Benchmark: what `minicluster.track` and zero-code observation cost, per step and per collective.

    .venv/bin/python bench/track_overhead.py [--rounds 8] [--steps 100] [--model mlp]

One torchrun job (2 local ranks, gloo on the CPU) trains the built-in model four ways,
interleaved round by round with the order rotating, so drift in the machine's load hits
all three alike:

- none: DDP with its C++ all-reduce, no instrumentation;
- python hook: DDP with torch's own Python `allreduce_hook` (what every counting hook
  costs before counting anything: Python and a future callback per bucket);
- track: the same loop with the lines a user adds (`track.start`, `watch`, four
  `phase` blocks, `step(samples=, loss=)`), the endpoint up on a free port;
- observe: the uninstrumented loop under what `python -m minicluster.track.observe`
  installs (collective wrappers, the counting DDP hook, a tracker).

Per step: CPU time (`time.process_time`, which hardly moves with other tenants' load)
and wall time, medians over the rounds of each rank, then the mean over the ranks.
Per collective: a 1-float all_reduce with and without the wrappers, interleaved; and the
wrapper's own bookkeeping around a function that does nothing (exact, no network).
Per step in isolation: the Python work of the track calls of one step, without a model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from overhead_common import NPROC, figures_table, first_batch, run_probe
from rich.console import Console
from rich.table import Table
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel

from minicluster.core.config import TrainerSettings
from minicluster.track import collectives, comm
from minicluster.track.settings import TrackSettings
from minicluster.track.tracker import Tracker
from minicluster.trainer.models import build_model, language_model_loss

WAYS = ("none", "python hook", "track", "observe")


def _tracker(rank: int, observer: bool = False) -> Tracker:
    settings = TrackSettings(
        job_id="bench", node="bench", rank=rank, world_size=NPROC, metrics_port=0, log_interval=10
    )
    return Tracker(settings, total=None, observer=observer)


def _close(tracker: Tracker) -> None:
    tracker.linger_seconds = 0
    if tracker.observer:
        tracker._ending = True
    tracker.close(ok=True)


def _run(way: str, settings: TrainerSettings, batch, steps: int, rank: int) -> tuple[float, float]:
    inputs, targets = batch
    tracker = None
    if way == "observe":
        tracker = _tracker(rank, observer=True)
        collectives.install()
        comm.patch_ddp(tracker.watch)
    torch.manual_seed(0)
    model = build_model(settings)
    ddp = DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)
    if way == "python hook":
        ddp.register_comm_hook(None, allreduce_hook)
    if way == "track":
        tracker = _tracker(rank)
        tracker.watch(ddp)
        t = tracker

        def step() -> None:
            with t.phase("data"):
                x, y = inputs.clone(), targets.clone()
            with t.phase("forward"):
                loss = language_model_loss(ddp(x), y)
            with t.phase("backward"):
                loss.backward()
            with t.phase("optimizer"):
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            t.step(samples=len(x), loss=loss)
    else:

        def step() -> None:
            x, y = inputs.clone(), targets.clone()
            loss = language_model_loss(ddp(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    for _ in range(5):  # warm-up, and DDP's bucket rebuild after the first step
        step()
    dist.barrier()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(steps):
        step()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    dist.barrier()
    if way == "observe":
        comm.unpatch_ddp()
        collectives.uninstall()
    if tracker is not None:
        _close(tracker)
    return cpu / steps, wall / steps


def _collective_cost(calls: int, rounds: int) -> dict[str, float]:
    """Seconds per 1-float all_reduce (2 ranks) plain and wrapped, medians of rounds."""
    x = torch.ones(1)
    plain, wrapped = [], []
    for round_ in range(rounds):
        for installed in (False, True) if round_ % 2 == 0 else (True, False):
            if installed:
                collectives.install()
            dist.barrier()
            started = time.perf_counter()
            for _ in range(calls):
                dist.all_reduce(x)
            (wrapped if installed else plain).append((time.perf_counter() - started) / calls)
            collectives.uninstall()
    return {"plain": statistics.median(plain), "wrapped": statistics.median(wrapped)}


def bookkeeping_per_call(iterations: int = 200_000) -> float:
    """The wrapper's own work per collective call, around a function that does nothing."""

    def all_reduce(tensor, op=None, group=None, async_op=False):
        return None

    wrapped = collectives._wrap("all_reduce", all_reduce)
    tensor = torch.ones(1)
    collectives._counting = True
    try:
        best = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(iterations):
                wrapped(tensor)
            middle = time.perf_counter()
            for _ in range(iterations):
                all_reduce(tensor)
            best.append(((middle - started) - (time.perf_counter() - middle)) / iterations)
    finally:
        collectives._counting = False
        collectives.STATS.__init__()
    return statistics.median(best)


def track_calls_per_step(iterations: int = 50_000) -> float:
    """The Python work of one step's track calls (4 phases, step with a loss), no model."""
    settings = TrackSettings(job_id="b", node="b", metrics_port=None, log_interval=10**9)
    with open(os.devnull, "w") as sink:
        tracker = Tracker(settings, total=None)
        tracker._log.stdout = sink
        loss = torch.ones(())
        started = time.perf_counter()
        for _ in range(iterations):
            for name in ("data", "forward", "backward", "optimizer"):
                with tracker.phase(name):
                    pass
            tracker.step(samples=32, loss=loss)
        seconds = (time.perf_counter() - started) / iterations
        tracker._closed = True
        tracker.sink.close()
    return seconds


def probe(args: argparse.Namespace, out: Path) -> None:
    """Under torchrun: every way, interleaved; rank 0 writes the medians as JSON."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=timedelta(seconds=300))
    rank, world = dist.get_rank(), dist.get_world_size()
    settings = TrainerSettings(model=args.model, batch_size=args.batch_size)
    batch = first_batch(settings, rank, world)
    cpu: dict[str, list[float]] = {way: [] for way in WAYS}
    wall: dict[str, list[float]] = {way: [] for way in WAYS}
    for round_ in range(args.rounds):
        shift = round_ % len(WAYS)
        order = WAYS[shift:] + WAYS[:shift]
        for way in order:
            c, w = _run(way, settings, batch, args.steps, rank)
            cpu[way].append(c)
            wall[way].append(w)
    result = {
        "cpu": {way: statistics.median(v) for way, v in cpu.items()},
        "wall": {way: statistics.median(v) for way, v in wall.items()},
        "collective": _collective_cost(args.collective_calls, args.rounds),
    }
    everyone: list[dict | None] = [None] * world
    dist.all_gather_object(everyone, result)
    if rank == 0:
        out.write_text(json.dumps(everyone))
    dist.destroy_process_group()


def probe_ranks(args: argparse.Namespace, work: Path) -> list[dict]:
    options = [
        f"--model={args.model}", f"--batch-size={args.batch_size}",
        f"--rounds={args.rounds}", f"--steps={args.steps}",
        f"--collective-calls={args.collective_calls}",
    ]  # fmt: skip
    return run_probe(
        __file__, "--probe", work / "probe.json", options, 3600, {"MINICLUSTER_METRICS_PORT": "0"}
    )


def _mean_over_ranks(ranks: list[dict], pick: Callable[[dict], float]) -> float:
    return statistics.fmean(pick(r) for r in ranks)


def report(args: argparse.Namespace, ranks: list[dict], per_call: float, calls: float) -> Table:
    cpu = {w: _mean_over_ranks(ranks, lambda r, w=w: r["cpu"][w]) for w in WAYS}
    wall = {w: _mean_over_ranks(ranks, lambda r, w=w: r["wall"][w]) for w in WAYS}
    plain = _mean_over_ranks(ranks, lambda r: r["collective"]["plain"])
    wrapped = _mean_over_ranks(ranks, lambda r: r["collective"]["wrapped"])

    def pct(value: float, base: float) -> str:
        return f"{(value - base) / base * 100:+.2f} %"

    rows = [
        ("job", f"{args.model}, {NPROC} ranks, batch {args.batch_size}/rank, gloo on the CPU"),
        ("runs", f"{args.rounds} rounds x {args.steps} steps per way, interleaved, medians"),
        *(
            (f"CPU per step, {way}", f"{cpu[way] * 1e3:.3f} ms" + (
                "" if way == "none" else f" ({pct(cpu[way], cpu['none'])})"
            ))
            for way in WAYS
        ),
        *(
            (f"wall per step, {way}", f"{wall[way] * 1e3:.3f} ms" + (
                "" if way == "none" else f" ({pct(wall[way], wall['none'])})"
            ))
            for way in WAYS
        ),
        (
            "CPU per step, track / observe over python hook",
            f"{pct(cpu['track'], cpu['python hook'])} / {pct(cpu['observe'], cpu['python hook'])}",
        ),
        (
            "track calls of one step, alone",
            f"{calls * 1e6:.2f} us = {calls / cpu['none'] * 100:.3f} % of a step's CPU",
        ),
        ("1-float all_reduce, plain / observed", f"{plain * 1e6:.1f} / {wrapped * 1e6:.1f} us"),
        ("observed all_reduce, difference", f"{(wrapped - plain) * 1e6:+.2f} us per call"),
        ("wrapper bookkeeping per collective", f"{per_call * 1e6:.2f} us per call (no network)"),
    ]  # fmt: skip
    return figures_table("track and zero-code observation overhead", rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="rounds of the four ways")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per way per round")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", choices=["mlp", "transformer"], default="mlp")
    parser.add_argument("--collective-calls", type=int, default=2000)
    parser.add_argument("--probe", type=Path, metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:  # this script, run by probe_ranks() under torchrun
        probe(args, args.probe)
        return 0
    if args.rounds < 3 or args.steps < 20:
        parser.error("--rounds must be at least 3 and --steps at least 20")
    console = Console(stderr=True)
    console.print("bookkeeping and track calls, in this process")
    per_call = bookkeeping_per_call()
    calls = track_calls_per_step()
    console.print(f"{NPROC} ranks under torchrun: {', '.join(WAYS)}, interleaved")
    with tempfile.TemporaryDirectory(prefix="track-overhead-") as tmp:
        ranks = probe_ranks(args, Path(tmp))
    Console().print(report(args, ranks, per_call, calls))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
