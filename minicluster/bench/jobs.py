"""One benchmark job: torchrun with N local ranks of the trainer, read back from its logs.

The figures come from the trainer's own end-of-job `summary <json>` lines (the trainer's
log contract) and its `start` line (backend, device, model, parameters, gradient bytes),
reduced with the launcher's `summarize`, so `bench` and `run-job` compute samples/s,
phase times and bus bandwidth the same way.

Every rank runs with one intra-op thread (OMP_NUM_THREADS=1) in both runs: each rank
stands for one node, so world size 2 against 1 measures what adding a node gives, not
what splitting one machine's thread pool gives. (torchrun itself forces 1 thread only
when there are several ranks, which would bias the comparison.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from minicluster.core.logformat import LogLine, parse_line
from minicluster.demo.ports import free_port_block
from minicluster.launcher.summary import rank_summaries, summarize

TORCHRUN_MODULE = "torch.distributed.run"


class BenchError(Exception):
    """A benchmark job failed; the message says which and where its log is."""


@dataclass(frozen=True)
class BenchSettings:
    steps: int = 100
    batch_size: int = 32
    model: str = "mlp"
    device: str = "cpu"
    seed: int = 0
    timeout_seconds: float = 900.0


@dataclass
class BenchRun:
    world_size: int
    job_id: str
    summary: dict  # minicluster.launcher.summary.summarize() of this run
    start: dict[str, str]  # fields of rank 0's `start` line
    ranks: dict[int, dict] = field(default_factory=dict)
    log_path: Path | None = None


def trainer_command(world_size: int, job_id: str, settings: BenchSettings, work: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        TORCHRUN_MODULE,
        "--standalone",
        "--nnodes=1",
        f"--nproc-per-node={world_size}",
        "-m",
        # One core per rank (where the OS allows it): compute is fair between world sizes.
        "minicluster.bench.pin",
        "minicluster.trainer",
        "--job-id",
        job_id,
        "--steps",
        str(settings.steps),
        "--batch-size",
        str(settings.batch_size),
        "--model",
        settings.model,
        "--device",
        settings.device,
        "--seed",
        str(settings.seed),
        # Metrics stay on: the all-reduce counters come from the trainer's comm hook.
        "--metrics-address",
        "127.0.0.1",
        "--metrics-base-port",
        str(free_port_block(world_size)),
        "--checkpoint-interval",
        "0",
        "--linger",
        "0",
        "--checkpoint-dir",
        str(work / "checkpoints"),
        "--log-dir",
        str(work / "logs"),
        "--run-dir",
        str(work / "run"),
    ]


def _start_fields(lines: list[LogLine]) -> dict[str, str]:
    for line in lines:
        if line.rank == 0 and line.message.startswith("start "):
            return line.fields()
    return {}


def run_local(world_size: int, settings: BenchSettings, work: Path, label: str) -> BenchRun:
    """Run the trainer with `world_size` ranks on this machine and summarise it."""
    job_id = f"{label}-ws{world_size}"
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / f"{job_id}.out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    with log_path.open("w") as out:
        try:
            proc = subprocess.run(
                trainer_command(world_size, job_id, settings, work),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                timeout=settings.timeout_seconds,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BenchError(
                f"world size {world_size}: no result after {settings.timeout_seconds:.0f}s "
                f"(output in {log_path})"
            ) from None
    wall = time.monotonic() - started
    lines = [p for p in map(parse_line, log_path.read_text(errors="replace").splitlines()) if p]
    ranks = rank_summaries(lines)
    if proc.returncode != 0 or len(ranks) != world_size:
        raise BenchError(
            f"world size {world_size}: torchrun exited with status {proc.returncode} and "
            f"{len(ranks)}/{world_size} ranks reported a summary (output in {log_path})"
        )
    summary = summarize(
        ranks,
        world_size=world_size,
        target_steps=settings.steps,
        wall_seconds=wall,
        link_speed_bytes=None,
    )
    return BenchRun(world_size, job_id, summary, _start_fields(lines), ranks, log_path)
