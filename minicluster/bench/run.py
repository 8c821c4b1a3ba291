"""The whole bench: the link, world size 1, world size 2, then report.md and plots."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from minicluster.bench import tcp
from minicluster.bench.jobs import BenchSettings, run_local
from minicluster.bench.markdown import render_markdown
from minicluster.bench.plots import write_plots
from minicluster.bench.results import compare
from minicluster.logformat import now_iso


@dataclass(frozen=True)
class BenchOutput:
    directory: Path
    report: Path
    results: dict
    plots: dict[str, Path]


def default_out_dir(runs_dir: Path = Path("runs")) -> Path:
    return runs_dir / time.strftime("bench-%Y%m%d-%H%M%S")


def run_bench(
    settings: BenchSettings,
    out_dir: Path,
    console: Console,
    world_sizes: tuple[int, int] = (1, 2),
    tcp_seconds: float = 1.0,
    link_address: str = "127.0.0.1",
) -> BenchOutput:
    started_at = now_iso()
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / "work"
    label = out_dir.name
    console.print(f"raw TCP throughput on {link_address} ({tcp_seconds:g} s) ...")
    link = tcp.measure(link_address, tcp_seconds)
    runs = []
    for world_size in world_sizes:
        console.print(f"world size {world_size}: {settings.steps} steps ...")
        runs.append(run_local(world_size, settings, work, label))
        done = runs[-1].summary
        console.print(
            f"  {done['samples_per_second']:.1f} samples/s, "
            f"{done['step_seconds'] * 1000:.2f} ms/step"
        )
    results = compare(runs[0], runs[1], link, settings, started_at)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plots = write_plots(results, out_dir)
    report = out_dir / "report.md"
    report.write_text(render_markdown(results, plots))
    return BenchOutput(out_dir, report, results, plots)
