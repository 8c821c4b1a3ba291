"""`minicluster bench [--steps N] [--out DIR] [--config FILE]`: world size 1 against 2 on
this machine (and across the configured nodes with --config), with report.md and PNG plots.
`minicluster bench --allreduce [--config FILE | --local]`: the all-reduce sweep from 4 KB to
256 MB against the raw link (see minicluster.bench)."""

from __future__ import annotations

import argparse
from pathlib import Path

from minicluster.commands.args import UsageError, add_config_arguments, positive_int
from minicluster.commands.run_job import add_ssh_arguments, ssh_settings


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
    parser.add_argument(
        "--allreduce",
        action="store_true",
        help="all-reduce sweep (4 KB to 256 MB) across the nodes of --config (or --local) "
        "against raw TCP between them",
    )
    parser.add_argument(
        "--sizes",
        metavar="LIST",
        help="sweep sizes, e.g. 4K,1M,64M (default 4 KB to 256 MB in x4 steps)",
    )
    parser.add_argument(
        "--iters", type=positive_int, metavar="N", help="timed calls per size (default by size)"
    )
    add_config_arguments(parser)
    add_ssh_arguments(parser)
    parser.set_defaults(func=run)


def _nodes_config(args: argparse.Namespace):
    """The config whose nodes the bench runs on: --config FILE, or the local profile."""
    from minicluster.commands.args import config_from_args
    from minicluster.core.config import require_real_addresses
    from minicluster.core.profiles import LOCAL_SOURCE

    if args.config is None:
        args.local = True
    config = config_from_args(args)
    require_real_addresses(config, LOCAL_SOURCE if args.local else args.config)
    return config


def run_allreduce(args: argparse.Namespace) -> int:
    from rich.console import Console

    from minicluster.bench import allreduce, sweep
    from minicluster.bench.nodes import NodesError
    from minicluster.launcher.remote import LauncherError

    try:
        sizes = sweep.parse_sizes(args.sizes) if args.sizes else list(sweep.SIZES)
    except ValueError as exc:
        raise UsageError(f"--sizes: {exc}") from None
    config = _nodes_config(args)
    console = Console(stderr=True)
    where = ", ".join(f"{n.name} ({n.address})" for n in config.nodes)
    console.print(f"all-reduce sweep on {where}, raw TCP for {args.tcp_seconds:g} s ...")
    try:
        results = allreduce.measure(
            config, sizes, ssh_settings(args), tcp_seconds=args.tcp_seconds, iters=args.iters
        )
    except (NodesError, LauncherError, RuntimeError) as exc:
        console.print(f"bench failed: {exc}", style="red", markup=False)
        return 1
    print("\n".join(allreduce.table_lines(results)))
    if args.out:
        print(f"report: {allreduce.write_report(results, args.out)}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.tcp_seconds <= 0:
        raise UsageError("--tcp-seconds must be positive")
    if args.allreduce:
        return run_allreduce(args)
    # Imported here: torch and matplotlib would slow every other `minicluster` command.
    from rich.console import Console

    from minicluster.bench.jobs import BenchError, BenchSettings
    from minicluster.bench.run import default_out_dir, run_bench

    # The nodes' config is checked before anything runs: a placeholder address fails now.
    config = _nodes_config(args) if args.config is not None else None
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
    if config is not None:
        from minicluster.bench.nodes import NodesError
        from minicluster.bench.run import run_nodes_bench
        from minicluster.launcher.remote import LauncherError

        try:
            nodes = run_nodes_bench(
                config, settings, out_dir / "nodes", console, ssh_settings(args),
                tcp_seconds=args.tcp_seconds, repeats=args.repeats,
            )  # fmt: skip
        except (NodesError, LauncherError, BenchError) as exc:
            console.print(f"bench across the nodes failed: {exc}", style="red", markup=False)
            return 1
        efficiency = nodes.results["scaling_efficiency"]
        print(
            f"across {', '.join(nodes.results['nodes'])}: scaling efficiency "
            + ("n/a" if efficiency is None else f"{efficiency:.1%}")
            + f"; report: {nodes.report}"
        )
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
