"""What every command shares: the config arguments, usage errors and argument types."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from minicluster.core.config import Config, ConfigError, load_config
from minicluster.core.profiles import local_profile

# promapi pulls in requests: commands that never ask Prometheus should not pay for it.
if TYPE_CHECKING:
    from minicluster.core.promapi import Prometheus

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


def add_prometheus_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prometheus",
        metavar="URL",
        help="Prometheus base URL (default: the master's address and prometheus.port)",
    )


def config_beside_prometheus(args: argparse.Namespace) -> Config | None:
    """The config, or None when `--prometheus` is given and no config was asked for:
    with an explicit URL the config only names the nodes, their interfaces and the scrape
    interval. A config that was asked for and is bad is still an error."""
    try:
        return config_from_args(args)
    except ConfigError:
        if args.prometheus and not args.config and not getattr(args, "local", False):
            return None
        raise


def prometheus_from_args(args: argparse.Namespace, config: Config | None) -> str:
    """`--prometheus`, else the config's master."""
    from minicluster.core.promapi import prometheus_url

    return args.prometheus or prometheus_url(config)


def prometheus_client_from_args(
    args: argparse.Namespace, config: Config | None, timeout: float = 5.0
) -> Prometheus:
    """The client of `prometheus_from_args`' URL, with the cluster's credentials when the
    config has security.tls (a missing PKI file is one ConfigError line)."""
    from minicluster.core.promapi import prometheus_client_for

    return prometheus_client_for(config, url_override=args.prometheus, timeout=timeout)


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
