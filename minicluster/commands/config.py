"""`minicluster config init|check|show [FILE]`."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from minicluster.commands.args import UsageError
from minicluster.core.config import load_config
from minicluster.core.profiles import local_profile
from minicluster.render.committed import EXAMPLE_CONFIG


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="create, validate or print config.yaml")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init", help="create your config.yaml from the repository's config.example.yaml"
    )
    init.add_argument("file", nargs="?", default="config.yaml")
    init.add_argument("--force", action="store_true", help="replace an existing file")
    init.set_defaults(func=run_init)
    check = actions.add_parser("check", help="validate a config file (exit 2 on the first error)")
    check.add_argument("file", nargs="?", default="config.yaml")
    check.set_defaults(func=run_check)
    show = actions.add_parser("show", help="print the resolved configuration as YAML")
    show.add_argument("file", nargs="?", default="config.yaml")
    show.add_argument("--local", action="store_true", help="show the built-in local profile")
    show.set_defaults(func=run_show)


def run_init(args: argparse.Namespace) -> int:
    target = Path(args.file)
    if not EXAMPLE_CONFIG.is_file():
        raise UsageError(
            f"{EXAMPLE_CONFIG}: the example config is missing; run this from a clone of "
            "the repository"
        )
    if target.is_dir():
        raise UsageError(f"{target}: is a directory; name the file to create")
    if target.exists() and not args.force:
        raise UsageError(f"{target}: already exists; edit it, or add --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(EXAMPLE_CONFIG, target)
    print(
        f"{target}: created from {EXAMPLE_CONFIG.name}; set each node's address, ssh_user and "
        f"interface, then `minicluster config check {target}`"
    )
    return 0


def run_check(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    names = ", ".join(f"{n.name} ({n.role}, {n.address})" for n in config.nodes)
    print(f"{args.file}: ok: {len(config.nodes)} nodes: {names}; world size {config.world_size}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    config = local_profile() if args.local else load_config(args.file)
    print(config.to_yaml(), end="")
    return 0
