"""`minicluster deploy [--config FILE] [--dry-run]` and `minicluster undeploy [--purge]`.

Both run `python -m minicluster.deploy` in a child process: pyinfra's parallelism needs gevent's
monkey-patching before anything else is imported, which this CLI process is past.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from minicluster.commands.args import add_config_arguments, config_from_args, existing_file
from minicluster.core.config import require_real_addresses


def register(subparsers: argparse._SubParsersAction) -> None:
    deploy = subparsers.add_parser(
        "deploy",
        help="install the stack on every node over ssh (pyinfra); idempotent",
        description="Build the wheel once, install it into each node's venv, install the "
        "exporter LaunchDaemon everywhere and Prometheus, Alertmanager and Grafana on the "
        "master; restart or reload only what changed; verify from the master.",
    )
    add_config_arguments(deploy, allow_local=False)
    deploy.add_argument(
        "--dry-run", action="store_true", help="show what would change, change nothing"
    )
    deploy.add_argument(
        "--wheel",
        metavar="FILE",
        type=Path,
        help="deploy this minicluster wheel instead of building one from this checkout",
    )
    deploy.set_defaults(func=run_deploy)
    undeploy = subparsers.add_parser(
        "undeploy",
        help="boot out the services and remove what deploy installed (data is kept)",
    )
    add_config_arguments(undeploy, allow_local=False)
    undeploy.add_argument("--purge", action="store_true", help="also delete data and logs")
    undeploy.add_argument(
        "--node",
        metavar="NAME",
        help="undeploy this node only (one of config.yaml's nodes); the others are not touched",
    )
    undeploy.set_defaults(func=run_undeploy)


def _run(action: str, args: argparse.Namespace, *flags: str) -> int:
    # A bad config or a placeholder address is one line and exit 2, before any connection.
    require_real_addresses(config_from_args(args), args.config or "config.yaml")
    config_file = args.config or "config.yaml"
    command = [sys.executable, "-m", "minicluster.deploy", action, "--config", config_file]
    return subprocess.run([*command, *flags]).returncode


def run_deploy(args: argparse.Namespace) -> int:
    flags = ["--dry-run"] if args.dry_run else []
    if args.wheel:
        flags += ["--wheel", str(existing_file(str(args.wheel)).resolve())]
    return _run("deploy", args, *flags)


def run_undeploy(args: argparse.Namespace) -> int:
    flags = ["--purge"] if args.purge else []
    if args.node:
        config = config_from_args(args)
        try:
            config.node(args.node)
        except KeyError as exc:
            print(f"{args.config or 'config.yaml'}: --node: {exc.args[0]}", file=sys.stderr)
            return 2
        flags += ["--node", args.node]
    return _run("undeploy", args, *flags)
