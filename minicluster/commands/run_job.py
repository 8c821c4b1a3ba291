"""`minicluster run-job [--config FILE | --local] [--steps N] ...`: run one training job on
every node with live progress, a merged log and a summary (see minicluster.launcher)."""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
from pathlib import Path

from rich.console import Console

from minicluster.commands.args import (
    UsageError,
    add_config_arguments,
    config_from_args,
    positive_int,
)
from minicluster.core.config import Config
from minicluster.core.layout import config_path as installed_config_path
from minicluster.core.profiles import LOCAL_SOURCE, default_state_dir
from minicluster.launcher.job import JobSetup, run_job
from minicluster.launcher.plan import JobOptions, with_overrides
from minicluster.launcher.remote import SshSettings


def add_ssh_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ssh-config",
        metavar="FILE",
        default=os.environ.get("MINICLUSTER_SSH_CONFIG"),
        help="ssh client config file (ssh -F; default $MINICLUSTER_SSH_CONFIG or ~/.ssh/config)",
    )
    parser.add_argument(
        "--ssh-option",
        metavar="OPTION",
        action="append",
        default=[],
        help="extra ssh -o option, e.g. IdentityFile=~/.ssh/minis (repeatable)",
    )


def ssh_settings(args: argparse.Namespace) -> SshSettings:
    return SshSettings(config_file=args.ssh_config, options=tuple(args.ssh_option))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run-job",
        help="run a training job on every node with live progress and a merged log",
        description="Start torchrun on every node (over ssh; nodes on 127.0.0.1 run here), "
        "stream and merge their logs, show progress, and print and store a summary. "
        "Flags override config.yaml's trainer section for this job.",
    )
    add_config_arguments(parser)
    trainer = parser.add_argument_group("trainer overrides")
    trainer.add_argument("--steps", type=positive_int, metavar="N")
    trainer.add_argument("--batch-size", type=positive_int, metavar="N", help="per rank")
    trainer.add_argument("--model", choices=["mlp", "transformer"])
    trainer.add_argument("--device", choices=["auto", "cpu", "mps", "cuda"])
    trainer.add_argument("--seed", type=int, metavar="N")
    trainer.add_argument("--checkpoint-interval", type=int, metavar="STEPS")
    trainer.add_argument("--log-interval", type=positive_int, metavar="STEPS")
    trainer.add_argument("--pg-timeout-seconds", type=int, metavar="S")
    trainer.add_argument("--linger", type=float, metavar="S", dest="linger_seconds")
    trainer.add_argument("--no-metrics", action="store_true", help="ranks serve no /metrics")
    trainer.add_argument(
        "--step-sleep", type=float, metavar="S", help="pause after each step (demos, tests)"
    )
    torchrun = parser.add_argument_group("torchrun overrides")
    torchrun.add_argument("--nproc-per-node", type=positive_int, metavar="N", help="ranks per node")
    torchrun.add_argument("--max-restarts", type=int, metavar="N")
    torchrun.add_argument("--rendezvous-port", type=positive_int, metavar="PORT")
    parser.add_argument(
        "--logs-dir", type=Path, default=Path("logs"), metavar="DIR", help="default ./logs"
    )
    parser.add_argument(
        "--runs-dir", type=Path, default=Path("runs"), metavar="DIR", help="default ./runs"
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=5.0,
        metavar="S",
        help="when stopping: seconds from SIGTERM to SIGKILL (default 5)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="echo every rank line")
    add_ssh_arguments(parser)
    parser.set_defaults(func=run)


def _options(args: argparse.Namespace) -> JobOptions:
    names = [f for f in JobOptions.__dataclass_fields__ if f != "no_metrics"]
    return JobOptions(no_metrics=args.no_metrics, **{n: getattr(args, n) for n in names})


def _write_local_config(config: Config) -> Path:
    """The local profile as a file the loopback trainers read (they take --config FILE)."""
    directory = default_state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".local-config-")
    with os.fdopen(fd, "w") as out:
        out.write(config.to_yaml())
    path = directory / "local-config.yaml"
    os.replace(tmp, path)
    return path


def _config_paths(config: Config, args: argparse.Namespace) -> dict[str, str]:
    if args.local:
        here = str(_write_local_config(config))
    else:
        here = str(Path(args.config or "config.yaml").resolve())
    return {
        node.name: here if node.is_loopback else installed_config_path(node)
        for node in config.nodes
    }


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    options = _options(args)
    if options.max_restarts is not None and options.max_restarts < 0:
        raise UsageError("--max-restarts must be 0 or more")
    base = config_from_args(args)
    source = LOCAL_SOURCE if args.local else (args.config or "config.yaml")
    config = with_overrides(base, options, f"{source} with command-line overrides")
    setup = JobSetup(
        config=config,
        options=options,
        config_paths=_config_paths(base, args),
        logs_dir=args.logs_dir,
        runs_dir=args.runs_dir,
        ssh=ssh_settings(args),
        grace_seconds=args.grace,
        verbose=args.verbose,
    )
    # SIGTERM and SIGHUP (terminal closed) stop the job like Ctrl-C does.
    stop_signals = (signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, _raise_keyboard_interrupt) for sig in stop_signals}
    try:
        result = run_job(setup, out=Console(), err=Console(stderr=True, soft_wrap=True))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return result.exit_code
