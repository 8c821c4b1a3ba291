"""Benchmark: what the trainer's instrumentation costs, and what its all-reduce does.

    .venv/bin/python bench/trainer_overhead.py [--steps 250] [--pairs 4] [--model mlp]

The same job (model, seed, batch, 2 local ranks under torchrun, gloo on the CPU) runs
with metrics on and with `--no-metrics`, interleaved in pairs whose order alternates
(on/off, off/on, ...) so drift in the machine's load hits both sides alike. "On" is
everything the trainer adds to observe itself: the counting comm hook, the Prometheus
endpoint, the histograms, with a scraper reading both ranks every `--scrape-interval`
seconds (harsher than Prometheus' 15 s). "Off" is DDP's built-in all-reduce and no
endpoint. Three measures of a step, each averaged over the ranks, median over the runs:

- CPU time per step of the training loop, sampled from outside with psutil: the
  headline, because on a shared machine it hardly moves with the other tenants' load;
- wall time per step (the `summary` lines' wall_seconds / steps; start-up excluded),
  which is what the instrumentation must not slow, but swings by tens of percent here;
- the 10th percentile of the log intervals' step times (the least disturbed stretches).

Then the parts on their own, where noise is smaller: the per-step Python work of the
bookkeeping (timed in-process over many iterations), the CPU to render /metrics once,
and DDP's all-reduce three ways under torchrun (C++ built-in, DDP's Python
`allreduce_hook`, the trainer's counting wrapper), CPU per step, interleaved.

All-reduce figures come from the "on" runs through minicluster.launcher.summary, so they
match what `minicluster run-job` prints: algorithm, bytes and latency per step, algbw,
bus bandwidth (nccl-tests: algbw x 2(n-1)/n, ring all-reduce) and the communication
fraction (exposed all-reduce time over step time).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psutil
import requests
import torch
import torch.distributed as dist
from overhead_common import NPROC, figures_table, first_batch, run_probe
from prometheus_client import generate_latest
from rich.console import Console
from rich.table import Table
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel

from minicluster.core.config import TrainerSettings
from minicluster.core.logformat import parse_line
from minicluster.launcher.summary import rank_summaries, summarize
from minicluster.track.comm import CountingHookState, counting_allreduce_hook
from minicluster.track.publish import PrometheusSink, PsutilProcessCollector, TrackCollector
from minicluster.track.stats import CommStats, RunInfo, RunStats
from minicluster.trainer.models import build_model, language_model_loss


@dataclass
class Run:
    metrics: bool
    step_seconds: float  # mean over ranks of wall_seconds / steps
    quiet_step_seconds: float  # 10th percentile over the log intervals of all ranks
    cpu_step_seconds: float  # CPU time of the training loop per step, mean over ranks
    summary: dict  # minicluster.launcher.summary.summarize()
    start: dict[str, str]


def free_base_port() -> int:
    while True:
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            base = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
            return base


class CpuWatch:
    """CPU seconds each rank spends in its training loop, sampled from outside with psutil.

    CPU time hardly depends on what else the machine runs (wall time does, a lot, on a
    shared machine): sampled when the rank logs `start` (the loop begins) and until it
    exits, it measures the work a step costs, which is what instrumentation adds to.
    """

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.at_start: dict[int, float] = {}
        self.last: dict[int, float] = {}

    def _started(self, rank: int) -> bool:
        path = self.log_dir / f"rank{rank}.log"
        return path.is_file() and " INFO start " in path.read_text()

    def sample(self, torchrun_pid: int) -> None:
        try:
            workers = psutil.Process(torchrun_pid).children()
        except psutil.NoSuchProcess:
            return
        for worker in workers:
            try:
                rank = int(worker.environ().get("RANK", "-1"))
                times = worker.cpu_times()
            except psutil.Error:
                continue
            seconds = times.user + times.system
            if rank not in self.at_start and self._started(rank):
                self.at_start[rank] = seconds
            self.last[rank] = seconds

    def loop_seconds(self, rank: int) -> float:
        return self.last[rank] - self.at_start[rank]


def scrape_until(stop: threading.Event, ports: list[int], interval: float) -> None:
    session = requests.Session()
    while not stop.wait(interval):
        for port in ports:
            with contextlib.suppress(requests.RequestException):  # not up yet, or done
                session.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def run_job(args: argparse.Namespace, metrics: bool, work: Path, index: int) -> Run:
    job_id = f"overhead-{index}-{'on' if metrics else 'off'}"
    base = free_base_port()
    argv = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={NPROC}", "-m", "--", "trainer",
        f"--job-id={job_id}", f"--steps={args.steps}", f"--batch-size={args.batch_size}",
        f"--model={args.model}", "--seed=0", "--device=cpu", "--checkpoint-interval=0",
        f"--log-interval={args.log_interval}", "--linger=0", f"--metrics-base-port={base}",
        f"--log-dir={work / 'logs'}", f"--run-dir={work / 'run'}",
        f"--checkpoint-dir={work / 'checkpoints'}",
    ]  # fmt: skip
    if not metrics:
        argv.append("--no-metrics")
    stop = threading.Event()
    scraper = threading.Thread(
        target=scrape_until, args=(stop, [base, base + 1], args.scrape_interval), daemon=True
    )
    if metrics:
        scraper.start()
    output = work / f"{job_id}.out"
    cpu = CpuWatch(work / "logs" / job_id)
    try:
        with output.open("w") as out:
            job = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=work)
            while job.poll() is None:
                cpu.sample(job.pid)
                time.sleep(0.02)
    finally:
        stop.set()
    if job.returncode != 0:
        raise SystemExit(f"{job_id} failed:\n{output.read_text()[-3000:]}")
    lines = []
    for rank in range(NPROC):
        path = work / "logs" / job_id / f"rank{rank}.log"
        lines += [line for line in map(parse_line, path.read_text().splitlines()) if line]
    ranks = rank_summaries(lines)
    start = next(line.fields() for line in lines if line.message.startswith("start "))
    summary = summarize(
        ranks,
        world_size=NPROC,
        target_steps=args.steps,
        wall_seconds=max(r["wall_seconds"] for r in ranks.values()),
        link_speed_bytes=None,
    )
    step = statistics.fmean(r["wall_seconds"] / r["steps"] for r in ranks.values())
    # Step time of each log interval, from its samples_per_second (the first interval,
    # with warm-up, left out). Other tenants of the machine slow some intervals down;
    # a low percentile compares the least disturbed ones, as timeit's min does.
    intervals = [
        args.batch_size / float(fields["samples_per_second"])
        for line in lines
        if line.message.startswith("step ")
        and int((fields := line.fields())["step"]) > args.log_interval
    ]
    quiet = statistics.quantiles(intervals, n=10)[0]
    cpu_step = statistics.fmean(cpu.loop_seconds(rank) / args.steps for rank in range(NPROC))
    return Run(
        metrics=metrics,
        step_seconds=step,
        quiet_step_seconds=quiet,
        cpu_step_seconds=cpu_step,
        summary=summary,
        start=start,
    )


def instrumentation_cost_per_step(buckets: int, iterations: int = 50_000) -> float:
    """Seconds of Python work per step that metrics add: hook bookkeeping + histograms."""
    sink = PrometheusSink("127.0.0.1", 0)  # histograms only; no server is started
    stats = RunStats(target_steps=iterations)
    comm = CommStats(on_latency=sink.observe_bucket)
    stats.comm = comm
    grad = torch.empty(1024)
    started = time.perf_counter()
    for _ in range(iterations):
        for _ in range(buckets):
            comm.completed(comm.launched(grad))
        sink.observe_step(0.01)
    return (time.perf_counter() - started) / iterations


def scrape_cost(iterations: int = 1000) -> float:
    """CPU seconds to render one rank's /metrics page (collectors run at scrape time)."""
    sink = PrometheusSink("127.0.0.1", 0)
    info = RunInfo("bench", NPROC, "gloo", "cpu", "mlp", 1)
    sink.registry.register(TrackCollector(RunStats(target_steps=1), info))
    sink.registry.register(PsutilProcessCollector())
    started = time.process_time()
    for _ in range(iterations):
        generate_latest(sink.registry)
    return (time.process_time() - started) / iterations


HOOKS = ("built-in", "allreduce_hook", "counting")


def hook_probe(args: argparse.Namespace, out: Path, rounds: int = 8, steps: int = 100) -> None:
    """Under torchrun (2 ranks): CPU seconds per step with each way to all-reduce.

    DDP's C++ built-in all-reduce, DDP's own Python `allreduce_hook`, and the trainer's
    counting wrapper around it (with its histogram), interleaved, median per way. Rank 0
    writes the result as JSON lines to `out`.
    """
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=timedelta(seconds=120))
    rank, world = dist.get_rank(), dist.get_world_size()
    settings = TrainerSettings(model=args.model, batch_size=args.batch_size)
    inputs, targets = first_batch(settings, rank, world)
    histogram = PrometheusSink("127.0.0.1", 0).bucket_latency
    seconds: dict[str, list[float]] = {hook: [] for hook in HOOKS}
    for round_ in range(rounds):
        for hook in HOOKS if round_ % 2 == 0 else tuple(reversed(HOOKS)):
            torch.manual_seed(0)
            model = build_model(settings)
            ddp = DistributedDataParallel(model)
            optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)
            if hook == "allreduce_hook":
                ddp.register_comm_hook(None, allreduce_hook)
            elif hook == "counting":
                state = CountingHookState(None, CommStats(on_latency=histogram.observe))
                ddp.register_comm_hook(state, counting_allreduce_hook)

            def step() -> None:
                language_model_loss(ddp(inputs), targets).backward()  # noqa: B023
                optimizer.step()  # noqa: B023
                optimizer.zero_grad(set_to_none=True)  # noqa: B023

            for _ in range(5):  # warm-up, and DDP's bucket rebuild after the first step
                step()
            dist.barrier()
            started = time.process_time()
            for _ in range(steps):
                step()
            seconds[hook].append((time.process_time() - started) / steps)
    if rank == 0:
        out.write_text(json.dumps({hook: statistics.median(v) for hook, v in seconds.items()}))
    dist.destroy_process_group()


def hook_cost(args: argparse.Namespace, work: Path) -> dict[str, float]:
    options = [f"--model={args.model}", f"--batch-size={args.batch_size}"]
    return run_probe(__file__, "--hook-probe", work / "hooks.json", options, 1800)


def algorithm(start: dict[str, str]) -> str:
    if start["backend"] == "gloo" and start["device"] in ("cpu", "mps"):
        return "gloo ring (gloo::allreduce default for CPU tensors)"
    return f"{start['backend']} (its own choice)"


def report(args: argparse.Namespace, runs: list[Run], hooks: dict[str, float]) -> Table:
    on = [r for r in runs if r.metrics]
    off = [r for r in runs if not r.metrics]
    on_step = statistics.median(r.step_seconds for r in on)
    off_step = statistics.median(r.step_seconds for r in off)
    pairs = [
        (a.step_seconds - b.step_seconds) / b.step_seconds * 100
        for a, b in zip(on, off, strict=True)
    ]
    on_cpu = statistics.median(r.cpu_step_seconds for r in on)
    off_cpu = statistics.median(r.cpu_step_seconds for r in off)
    on_quiet = statistics.median(r.quiet_step_seconds for r in on)
    off_quiet = statistics.median(r.quiet_step_seconds for r in off)
    s = on[-1].summary
    steps = s["steps"]
    calls = s["allreduce_calls"] / steps
    bucket_cost = instrumentation_cost_per_step(round(calls))
    builtin = hooks["built-in"]
    render = scrape_cost()
    # One render per rank per scrape interval, spread over the steps in that interval.
    render_share = render / (args.scrape_interval / on_step) / on_cpu * 100
    per_step_bytes = s["allreduce_bytes"] / steps
    per_step_seconds = s["allreduce_seconds"] / steps
    algbw, busbw = s["allreduce_algbw_bytes_per_second"], s["allreduce_busbw_bytes_per_second"]
    rows = [
        ("job", f"{args.model}, {NPROC} ranks, batch {args.batch_size}/rank, {steps} steps"),
        ("runs", f"{len(on)} on + {len(off)} off, interleaved, order alternating"),
        ("step time, metrics off (median)", f"{off_step * 1e3:.3f} ms"),
        ("step time, metrics on (median)", f"{on_step * 1e3:.3f} ms"),
        ("overhead, end to end", f"{(on_step - off_step) / off_step * 100:+.2f} %"),
        ("overhead per pair", ", ".join(f"{p:+.2f} %" for p in pairs)),
        ("CPU per step, off / on (median)", f"{off_cpu * 1e3:.3f} / {on_cpu * 1e3:.3f} ms"),
        ("overhead, CPU per step", f"{(on_cpu - off_cpu) / off_cpu * 100:+.2f} %"),
        ("quiet-interval step time, off / on", f"{off_quiet * 1e3:.3f} / {on_quiet * 1e3:.3f} ms"),
        ("overhead, quiet intervals", f"{(on_quiet - off_quiet) / off_quiet * 100:+.2f} %"),
        (
            "instrumentation work per step",
            f"{bucket_cost * 1e6:.1f} us = {bucket_cost / off_cpu * 100:.3f} % of a step's CPU",
        ),
        *(
            (
                f"CPU per step, DDP {hook} (2 ranks)",
                f"{hooks[hook] * 1e3:.3f} ms ({(hooks[hook] - builtin) / builtin * 100:+.2f} %)",
            )
            for hook in HOOKS
        ),
        (
            f"rendering /metrics (every {args.scrape_interval:g} s here)",
            f"{render * 1e3:.2f} ms CPU = {render_share:.3f} % of a step's CPU",
        ),
        ("all-reduce algorithm", algorithm(on[-1].start)),
        ("all-reduce calls per step", f"{calls:g}"),
        ("all-reduce bytes per step", f"{per_step_bytes:,.0f} (= grad_bytes {s['grad_bytes']:,})"),
        ("all-reduce latency per step", f"{per_step_seconds * 1e3:.3f} ms"),
        ("algbw", f"{algbw / 1e6:,.1f} MB/s"),
        ("bus bandwidth (algbw x 2(n-1)/n)", f"{busbw / 1e6:,.1f} MB/s"),
        ("comm fraction of the step (exposed)", f"{s['comm_fraction'] * 100:.1f} %"),
        ("all-reduce latency / step time", f"{per_step_seconds / on_step * 100:.1f} %"),
    ]
    return figures_table("trainer instrumentation overhead", rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=250, help="steps per run (>= 200)")
    parser.add_argument("--pairs", type=int, default=4, help="on/off pairs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", choices=["mlp", "transformer"], default="mlp")
    parser.add_argument("--log-interval", type=int, default=5)
    parser.add_argument("--scrape-interval", type=float, default=1.0)
    parser.add_argument("--hook-probe", type=Path, metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hook_probe:  # this script, run by hook_cost() under torchrun
        hook_probe(args, args.hook_probe)
        return 0
    if args.steps < 200:
        parser.error("--steps must be at least 200")
    console = Console(stderr=True)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="trainer-overhead-") as tmp:
        for pair in range(args.pairs):
            order = (True, False) if pair % 2 == 0 else (False, True)
            for metrics in order:
                run = run_job(args, metrics, Path(tmp), len(runs))
                console.print(
                    f"pair {pair + 1}: metrics {'on ' if metrics else 'off'} "
                    f"{run.step_seconds * 1e3:.3f} ms/step, "
                    f"{run.cpu_step_seconds * 1e3:.3f} ms CPU/step"
                )
                runs.append(run)
        console.print("DDP all-reduce hooks, 2 ranks, interleaved")
        hooks = hook_cost(args, Path(tmp))
    Console().print(report(args, runs, hooks))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
