"""`minicluster demo [--once] [--steps N]` and `minicluster demo --stop`: the whole stack
and a 2-rank training job on this one machine (see minicluster.demo)."""

from __future__ import annotations

import argparse
from pathlib import Path

from minicluster.commands.args import UsageError, positive_int
from minicluster.core.profiles import default_state_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the whole stack and a 2-rank job on this machine (make demo)",
        description="Install Prometheus and Alertmanager if missing, start two local "
        "exporters, Prometheus, Alertmanager and Grafana (when installed), run a 2-rank "
        "job with live progress and write its report. The stack keeps running until "
        "`minicluster demo --stop` (make demo-stop) unless --once is given.",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--once", action="store_true", help="stop the stack at the end; exit with the job's status"
    )
    action.add_argument("--stop", action="store_true", help="stop the running demo stack")
    parser.add_argument("--steps", type=positive_int, help="training steps (default 300)")
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a config whose nodes are all on this machine (default: the local profile)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help=f"where the demo keeps its files (default {default_state_dir()})",
    )
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="default ./runs")
    parser.add_argument("--logs-dir", type=Path, default=Path("logs"), help="default ./logs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: the demo pulls in the launcher, rich and matplotlib, which other
    # sub-commands' start-up should not pay for.
    from minicluster.demo.run import DemoOptions, run_demo, stop_demo

    state_dir = (args.state_dir or default_state_dir()).expanduser().absolute()
    if args.stop:
        if args.config or args.steps:
            raise UsageError("--stop takes no --config or --steps")
        return stop_demo(state_dir)
    if args.config and not args.config.is_file():
        raise UsageError(f"{args.config}: no such file")
    options = DemoOptions(
        state_dir=state_dir,
        once=args.once,
        steps=args.steps,
        config_file=args.config.absolute() if args.config else None,
        runs_dir=args.runs_dir,
        logs_dir=args.logs_dir,
    )
    return run_demo(options)
