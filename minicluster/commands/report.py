"""`minicluster report <job_id> [--prometheus URL] [--out FILE]`: one self-contained HTML
file for a finished job, from Prometheus and runs/<job_id>.json (see minicluster.report)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from minicluster.commands.args import (
    UsageError,
    add_config_arguments,
    add_prometheus_argument,
    config_beside_prometheus,
    prometheus_from_args,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="one self-contained HTML report of a finished job",
        description="Plot a finished job from Prometheus (throughput, loss, step phases, "
        "all-reduce against NIC bytes, node CPU and memory, alerts) with its run-job "
        "summary into one HTML file that needs no network to open.",
    )
    parser.add_argument("job_id")
    add_config_arguments(parser)
    add_prometheus_argument(parser)
    parser.add_argument("--out", type=Path, metavar="FILE", help="default runs/<job_id>.html")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="default ./runs")
    parser.add_argument(
        "--overview-png",
        type=Path,
        metavar="FILE",
        help="also write throughput, step phases, network and CPU as one PNG",
    )
    parser.add_argument(
        "--since",
        type=float,
        default=24.0,
        metavar="HOURS",
        help="without runs/<job_id>.json, look this far back for the job (24)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.since <= 0:
        raise UsageError("--since must be positive")
    # Imported here: matplotlib would slow every other `minicluster` command.
    from minicluster.core.promapi import PrometheusError
    from minicluster.report.build import ReportRequest, build_report
    from minicluster.report.job import ReportError

    config = config_beside_prometheus(args)
    request = ReportRequest(
        job_id=args.job_id,
        prometheus_url=prometheus_from_args(args, config),
        out=args.out or args.runs_dir / f"{args.job_id}.html",
        runs_dir=args.runs_dir,
        scrape_interval_seconds=config.prometheus.scrape_interval_seconds if config else 15.0,
        interfaces={n.name: n.interface for n in config.nodes} if config else {},
        lookback_seconds=args.since * 3600,
        overview_png=args.overview_png,
        config=config,
    )
    try:
        path = build_report(request)
    except (ReportError, PrometheusError) as exc:
        print(f"minicluster report: {exc}", file=sys.stderr)
        return 1
    print(f"report: {path.resolve()}")
    return 0
