"""The `minicluster` command: one sub-command per module in minicluster.commands."""

from __future__ import annotations

import argparse
import importlib
import sys

from minicluster import __version__
from minicluster.commands.args import EXIT_USAGE, UsageError
from minicluster.core.config import ConfigError

# Each module defines register(subparsers); its parser sets func=run(args) -> exit status.
COMMANDS = (
    "config",
    "exporter",
    "render",
    "deploy",
    "doctor",
    "run_job",
    "stop",
    "logs",
    "status",
    "top",
    "demo",
    "bench",
    "report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minicluster",
        description="Distributed PyTorch on Mac Minis, observed with Prometheus and Grafana.",
    )
    parser.add_argument("--version", action="version", version=f"minicluster {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"minicluster.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, UsageError) as exc:
        print(f"minicluster: {exc}" if isinstance(exc, UsageError) else str(exc), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
