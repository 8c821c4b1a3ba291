"""The whole bench: the link, world size 1, world size 2, then report.md and plots."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from minicluster.bench import tcp
from minicluster.bench.cluster import first_nodes, run_on_nodes
from minicluster.bench.jobs import BenchRun, BenchSettings, run_local
from minicluster.bench.markdown import render_markdown
from minicluster.bench.nodes import tcp_between
from minicluster.bench.plots import write_plots
from minicluster.bench.results import compare
from minicluster.core.config import Config
from minicluster.core.logformat import now_iso
from minicluster.launcher.remote import SshSettings


@dataclass(frozen=True)
class BenchOutput:
    directory: Path
    report: Path
    results: dict
    plots: dict[str, Path]


def default_out_dir(runs_dir: Path = Path("runs")) -> Path:
    return runs_dir / time.strftime("bench-%Y%m%d-%H%M%S")


def median_run(runs: list[BenchRun]) -> BenchRun:
    """The run with the median samples/s (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda run: run.summary.get("samples_per_second") or 0.0)
    return ordered[(len(ordered) - 1) // 2]


def run_bench(
    settings: BenchSettings,
    out_dir: Path,
    console: Console,
    world_sizes: tuple[int, int] = (1, 2),
    tcp_seconds: float = 1.0,
    link_address: str = "127.0.0.1",
    repeats: int = 3,
) -> BenchOutput:
    """Measure the link, then run each world size `repeats` times, interleaved (1, 2, 1,
    2, ...) so that a burst of load from elsewhere hits both alike, and compare the
    median runs."""
    started_at = now_iso()
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / "work"
    console.print(f"raw TCP throughput on {link_address} ({tcp_seconds:g} s) ...")
    link = tcp.measure(link_address, tcp_seconds)
    runs: dict[int, list[BenchRun]] = {size: [] for size in world_sizes}
    for repeat in range(1, repeats + 1):
        for world_size in world_sizes:
            console.print(
                f"world size {world_size}, run {repeat}/{repeats}: {settings.steps} steps ..."
            )
            done = run_local(world_size, settings, work, f"{out_dir.name}-r{repeat}")
            runs[world_size].append(done)
            console.print(
                f"  {done.summary['samples_per_second']:.1f} samples/s, "
                f"{done.summary['step_seconds'] * 1000:.2f} ms/step"
            )
    base, scaled = (median_run(runs[size]) for size in world_sizes)
    results = compare(base, scaled, link, settings, started_at)
    results["repeats"] = repeats
    for row, size in zip(results["runs"], world_sizes, strict=True):
        row["samples_per_second_all_runs"] = [
            r.summary.get("samples_per_second") for r in runs[size]
        ]
    return _write(out_dir, results)


def _write(out_dir: Path, results: dict) -> BenchOutput:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plots = write_plots(results, out_dir)
    report = out_dir / "report.md"
    report.write_text(render_markdown(results, plots))
    return BenchOutput(out_dir, report, results, plots)


def run_nodes_bench(
    config: Config,
    settings: BenchSettings,
    out_dir: Path,
    console: Console,
    ssh: SshSettings | None = None,
    tcp_seconds: float = 1.0,
    repeats: int = 3,
) -> BenchOutput:
    """World size 1 (the master) against all nodes, over ssh like run-job; `out_dir`
    gets the same report.md, results.json and plots as the local bench."""
    started_at = now_iso()
    console.print(f"raw TCP between {config.nodes[0].name} and {config.nodes[-1].name} ...")
    link = tcp_between(config, tcp_seconds, ssh)
    sizes = {1: first_nodes(config, 1), 2: config}
    runs: dict[int, list[BenchRun]] = {1: [], 2: []}
    for repeat in range(1, repeats + 1):
        for key, nodes in sizes.items():
            names = ", ".join(n.name for n in nodes.nodes)
            console.print(f"{names}, run {repeat}/{repeats}: {settings.steps} steps ...")
            done = run_on_nodes(nodes, settings, f"{out_dir.name}-nodes-r{repeat}", ssh)
            runs[key].append(done)
            console.print(f"  {done.summary['samples_per_second']:.1f} samples/s")
    base, scaled = median_run(runs[1]), median_run(runs[2])
    results = compare(base, scaled, link, settings, started_at)
    results["repeats"] = repeats
    results["nodes"] = [n.name for n in config.nodes]
    for row, key in zip(results["runs"], (1, 2), strict=True):
        row["samples_per_second_all_runs"] = [
            r.summary.get("samples_per_second") for r in runs[key]
        ]
    return _write(out_dir, results)
