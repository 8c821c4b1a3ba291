"""`minicluster config check|show [FILE]`."""

from __future__ import annotations

import argparse

from minicluster.core.config import load_config
from minicluster.core.profiles import local_profile


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="validate or print config.yaml")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a config file (exit 2 on the first error)")
    check.add_argument("file", nargs="?", default="config.yaml")
    check.set_defaults(func=run_check)
    show = actions.add_parser("show", help="print the resolved configuration as YAML")
    show.add_argument("file", nargs="?", default="config.yaml")
    show.add_argument("--local", action="store_true", help="show the built-in local profile")
    show.set_defaults(func=run_show)


def run_check(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    names = ", ".join(f"{n.name} ({n.role}, {n.address})" for n in config.nodes)
    print(f"{args.file}: ok: {len(config.nodes)} nodes: {names}; world size {config.world_size}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    config = local_profile() if args.local else load_config(args.file)
    print(config.to_yaml(), end="")
    return 0
