"""`minicluster render [--config FILE | --local] --out DIR`: everything the master runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from minicluster.commands.args import add_config_arguments, config_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render",
        help="write Prometheus, Alertmanager, Grafana and launchd files from the config",
        description=(
            "Write prometheus/, alertmanager/, grafana/ and launchd/<node>/ into DIR. "
            "Grafana's admin password and secret key are generated once (mode 0600) at "
            "the paths config.yaml's grafana section names."
        ),
    )
    add_config_arguments(parser)
    parser.add_argument("--out", metavar="DIR", required=True, type=Path, help="output folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: the dashboard SDK is only needed by this command.
    from minicluster.render import grafana
    from minicluster.render.bundle import write_bundle

    config = config_from_args(args)
    written = write_bundle(config, args.out)
    print(f"rendered {len(written)} files for cluster {config.cluster.name!r} into {args.out}")
    for secret in grafana.secret_files(config):
        print(f"grafana {secret.name}: {secret.local} (install on the master as {secret.remote})")
    return 0
