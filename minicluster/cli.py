"""The `minicluster` command: one sub-command per module in minicluster.commands."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from minicluster import __version__
from minicluster.config import Config, ConfigError, load_config
from minicluster.profiles import local_profile

# Each module defines register(subparsers); its parser sets func=run(args) -> exit status.
COMMANDS = (
    "config",
    "exporter",
    "render",
    "deploy",
    "doctor",
    "run_job",
    "logs",
    "status",
    "demo",
    "bench",
    "report",
)

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


def add_config_arguments(parser: argparse.ArgumentParser, allow_local: bool = True) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--config", metavar="FILE", default=None, help="config.yaml to use (default ./config.yaml)"
    )
    if allow_local:
        group.add_argument(
            "--local",
            action="store_true",
            help="use the built-in local profile (both nodes are this machine)",
        )


def config_from_args(args: argparse.Namespace) -> Config:
    if getattr(args, "local", False):
        return local_profile()
    return load_config(args.config or "config.yaml")


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


def positive_int(value: str) -> int:
    """argparse type for counts and sizes: a whole number of at least 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return number


def existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise UsageError(f"{value}: no such file")
    return path
