"""`minicluster stop JOB_ID [--config FILE | --local]`: stop a job on every node by the
torchrun PIDs recorded in runs/JOB_ID.json; exit 0 when nothing of it is left running."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from minicluster.commands.args import UsageError, add_config_arguments, config_from_args
from minicluster.commands.run_job import add_ssh_arguments, ssh_settings
from minicluster.core.config import require_real_addresses
from minicluster.launcher.stopjob import StopError, stop_job


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stop",
        help="stop a job on every node by its recorded PIDs",
        description="Stop the job's torchrun and every rank under it on each node "
        "(SIGTERM, then SIGKILL after --grace), by the PIDs in runs/JOB_ID.json.",
    )
    parser.add_argument("job_id", metavar="JOB_ID")
    add_config_arguments(parser)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="default ./runs")
    parser.add_argument(
        "--grace", type=float, default=5.0, metavar="S", help="SIGTERM to SIGKILL (default 5)"
    )
    add_ssh_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if "/" in args.job_id or args.job_id.startswith("."):
        raise UsageError(f"{args.job_id!r} is not a job id")
    config = config_from_args(args)
    require_real_addresses(config, args.config or "config.yaml")
    try:
        stops = stop_job(config, args.runs_dir, args.job_id, ssh_settings(args), args.grace)
    except StopError as exc:
        raise UsageError(str(exc)) from None
    out = Console(soft_wrap=True)
    for stop in stops:
        out.print(stop.message, style=None if stop.clean else "red", markup=False)
    return 0 if all(s.clean for s in stops) else 1
