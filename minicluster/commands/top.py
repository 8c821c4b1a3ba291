"""`minicluster top`: a live view of every node, the running job and the firing alerts,
refreshed from Prometheus; `--once` prints one frame for scripts."""

from __future__ import annotations

import argparse
import functools

from rich.console import Console

from minicluster.commands.args import (
    add_config_arguments,
    add_prometheus_argument,
    config_beside_prometheus,
    prometheus_client_from_args,
)


def _interval(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0.2 <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds from 0.2 to 3600")
    return seconds


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "top", help="live view of nodes, the running job and alerts, from Prometheus"
    )
    add_config_arguments(parser)
    add_prometheus_argument(parser)
    parser.add_argument(
        "--interval",
        metavar="SECONDS",
        type=_interval,
        default=2.0,
        help="seconds between refreshes (default 2)",
    )
    parser.add_argument(
        "--once", action="store_true", help="print one frame and exit (1 if Prometheus is down)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from minicluster.top import app
    from minicluster.top.queries import fetch, window_for

    config = config_beside_prometheus(args)
    client = prometheus_client_from_args(args, config, timeout=3.0)
    snapshot = functools.partial(fetch, client.vector, client.base_url, config, window_for(config))
    try:
        if args.once:
            return app.once(snapshot, client.base_url, Console(), Console(stderr=True))
        return app.live(snapshot, client.base_url, args.interval, Console())
    finally:
        client.close()
