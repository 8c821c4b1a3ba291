"""What every command shares: the config arguments, usage errors and argument types."""

from __future__ import annotations

import argparse
from pathlib import Path

from minicluster.core.config import Config, load_config
from minicluster.core.profiles import local_profile

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
