"""`minicluster exporter [--config FILE | --local] [--node NAME] [--listen HOST:PORT]`."""

from __future__ import annotations

import argparse

from minicluster.commands.args import add_config_arguments, config_from_args
from minicluster.exporter import cli as exporter_cli


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "exporter",
        help="run this node's exporter (same as python -m minicluster.exporter)",
        description="Serve /metrics, /sd, / and /-/healthy. Without --config or --local it "
        "runs on built-in defaults (127.0.0.1:9100, no peers).",
    )
    add_config_arguments(parser)
    exporter_cli.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    explicit = args.config or args.local
    config = config_from_args(args) if explicit else None
    source = args.config or ("<local profile>" if args.local else "")
    options = exporter_cli.resolve_options(args, config, source)
    return exporter_cli.serve(options)
