"""`minicluster bench [--steps N] [--out DIR]`: world size 1 against 2 on this machine,
with report.md and PNG plots (see minicluster.bench)."""

from __future__ import annotations

import argparse
from pathlib import Path

from minicluster.commands.args import UsageError, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="world size 1 against 2: throughput, scaling, phases, all-reduce vs the link",
        description="Run the trainer with 1 and with 2 local ranks, measure raw TCP on the "
        "link in the same run, and write report.md, results.json and PNG plots.",
    )
    parser.add_argument("--steps", type=positive_int, default=100, help="steps per run (100)")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="per rank (32)")
    parser.add_argument("--model", choices=["mlp", "transformer"], default="mlp")
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="output folder (default runs/bench-<time>)"
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=3,
        help="runs per world size, interleaved; the median is reported (3)",
    )
    parser.add_argument(
        "--tcp-seconds", type=float, default=1.0, metavar="S", help="raw TCP test length (1)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.tcp_seconds <= 0:
        raise UsageError("--tcp-seconds must be positive")
    # Imported here: torch and matplotlib would slow every other `minicluster` command.
    from rich.console import Console

    from minicluster.bench.jobs import BenchError, BenchSettings
    from minicluster.bench.run import default_out_dir, run_bench

    console = Console(stderr=True)
    settings = BenchSettings(steps=args.steps, batch_size=args.batch_size, model=args.model)
    out_dir = args.out or default_out_dir()
    try:
        output = run_bench(
            settings, out_dir, console, tcp_seconds=args.tcp_seconds, repeats=args.repeats
        )
    except BenchError as exc:
        console.print(f"bench failed: {exc}", style="red", markup=False)
        return 1
    results = output.results
    efficiency = results["scaling_efficiency"]
    print(
        f"scaling efficiency {efficiency:.1%}, bus bandwidth / raw TCP "
        f"{results['busbw_tcp_ratio']:.1%}"
        if efficiency is not None and results["busbw_tcp_ratio"]
        else "bench finished"
    )
    print(f"report: {output.report}")
    for path in output.plots.values():
        print(f"plot:   {path}")
    return 0
