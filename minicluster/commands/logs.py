"""`minicluster logs JOB_ID`: fetch every node's per-rank log files of a job into
logs/JOB_ID/ and merge them by time into logs/JOB_ID.log.

torchrun's own lines, which no rank file has, are kept from an earlier merged log of the
same job. Each node's clock offset is measured over ssh; when the offsets are large enough
to swap neighbouring lines from different nodes, a note says so.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from minicluster.commands.args import UsageError, add_config_arguments, config_from_args
from minicluster.commands.run_job import add_ssh_arguments, ssh_settings
from minicluster.core import layout
from minicluster.core.config import require_real_addresses
from minicluster.launcher import clock
from minicluster.launcher.remote import LauncherError, fetch_rank_logs
from minicluster.launcher.stream import (
    PROCESS_TAG,
    MergedLine,
    read_merged_file,
    read_rank_file,
    write_sorted,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "logs", help="fetch a job's per-rank logs from every node and merge them by time"
    )
    parser.add_argument("job_id", metavar="JOB_ID")
    add_config_arguments(parser)
    parser.add_argument("--logs-dir", type=Path, default=Path("logs"), help="default ./logs")
    add_ssh_arguments(parser)
    parser.set_defaults(func=run)


def _process_lines(merged: Path) -> list[MergedLine]:
    """The torchrun lines of an earlier merged log (rank lines come from the rank files)."""
    if not merged.exists():
        return []
    return [
        line
        for line in read_merged_file(merged)
        if line.parsed is None and line.text.split(" ", 3)[2:3] == [PROCESS_TAG]
    ]


def run(args: argparse.Namespace) -> int:
    if "/" in args.job_id or args.job_id.startswith("."):
        raise UsageError(f"{args.job_id!r} is not a job id")
    config = config_from_args(args)
    require_real_addresses(config, args.config or "config.yaml")
    ssh = ssh_settings(args)
    out, err = Console(), Console(stderr=True, soft_wrap=True)
    dest = args.logs_dir / args.job_id
    rank_lines: list[MergedLine] = []
    offsets: list[clock.Offset] = []
    fetched = 0
    for node in config.nodes:
        remote_dir = layout.job_log_dir(node, config.trainer, args.job_id)
        try:
            files = fetch_rank_logs(node, remote_dir, dest, ssh)
            offsets.append(clock.measure(node, ssh))
        except (LauncherError, OSError) as exc:
            err.print(f"{node.name}: {exc}", style="yellow", markup=False)
            continue
        fetched += len(files)
        err.print(f"{node.name}: {len(files)} rank files from {remote_dir}", markup=False)
        for path in files:
            rank_lines += read_rank_file(path)
    if not fetched:
        err.print(f"no rank log files of job {args.job_id} on any node", style="red")
        return 1
    merged = args.logs_dir / f"{args.job_id}.log"
    write_sorted(merged, rank_lines + _process_lines(merged))
    note = clock.offset_note([line for line in rank_lines if line.parsed], offsets)
    if note:
        err.print(f"note: {note}", style="yellow", markup=False)
    out.print(f"{merged}: {len(rank_lines)} rank lines from {fetched} files", markup=False)
    return 0
