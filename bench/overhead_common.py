"""What the two overhead benches share: a probe of this script run under torchrun on two
local ranks (gloo on the CPU), the batch every rank trains on, and the table of figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rich.table import Table

from minicluster.core.config import TrainerSettings
from minicluster.trainer.data import build_stream

NPROC = 2


def first_batch(settings: TrainerSettings, rank: int, world: int):
    """The (inputs, targets) a rank trains on, the same in every run."""
    return build_stream(
        settings.dataset_size, settings.seq_len, settings.vocab_size, 0, settings.batch_size,
        rank, world,
    ).next_batch()  # fmt: skip


def run_probe(
    script: str, flag: str, out: Path, options: list[str], timeout: float, env: dict | None = None
) -> dict | list:
    """Runs `script flag out options...` under torchrun in `out`'s folder; its JSON answer."""
    argv = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={NPROC}", script, flag, str(out), *options,
    ]  # fmt: skip
    for _attempt in range(3):
        # Building and dropping many DDP instances in one process has (rarely) aborted in
        # torch's C++ teardown here ("terminate called without an active exception"); a
        # fresh attempt is cheaper than chasing that inside torch.
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=out.parent,
            env={**os.environ, **(env or {})},
        )
        if done.returncode == 0:
            return json.loads(out.read_text())
    raise SystemExit(f"{flag} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def figures_table(title: str, rows: list[tuple[str, str]]) -> Table:
    """The figures as a table for the terminal; also printed as Markdown for the docs."""
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    print("\n| figure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return table
