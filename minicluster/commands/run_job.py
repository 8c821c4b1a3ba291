"""`minicluster run-job [--config FILE | --local] [--steps N] ... [-- python SCRIPT.py ARGS]`:
run one job on every node with live progress, a merged log and a summary (see
minicluster.launcher). With a command after `--`, the project folder (--workdir) is shipped
to every node first and every node runs that command under torchrun instead of the
built-in trainer."""

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
from minicluster.core.config import Config, require_real_addresses
from minicluster.core.layout import config_path as installed_config_path
from minicluster.core.profiles import LOCAL_SOURCE, default_state_dir
from minicluster.launcher.files import ShipError, project_files
from minicluster.launcher.job import JobSetup, run_job
from minicluster.launcher.plan import TRAINER_ONLY, JobOptions, UserJob, with_overrides
from minicluster.launcher.remote import SshSettings, local_python
from minicluster.launcher.ship import placement, project_key, ship
from minicluster.launcher.usercmd import CommandError, UserCommand, parse_command

EXIT_NOT_SHIPPED = 1


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
        help="run a job (the built-in trainer or your script) on every node",
        description="Start torchrun on every node (over ssh; nodes on 127.0.0.1 run here), "
        "stream and merge their logs, show progress, and print and store a summary. "
        "Flags override config.yaml's trainer section for this job. "
        "`-- python SCRIPT.py ARGS` or `-- python -m PACKAGE.MODULE ARGS` runs your own "
        "program instead: --workdir is shipped to every node (only changed files travel) "
        "and every rank runs it with the project importable.",
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
        "--grad-compression",
        choices=["none", "fp16", "bf16", "powersgd"],
        help="what the gradient all-reduce sends (torch's DDP comm hooks)",
    )
    trainer.add_argument("--bucket-cap-mb", type=float, metavar="MB", help="DDP bucket size")
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
    project = parser.add_argument_group("your own program (after --)")
    project.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="the project folder shipped to every node (default: the current directory)",
    )
    project.add_argument(
        "--install-deps",
        action="store_true",
        help="install requirements.txt or pyproject dependencies on every node "
        "(cached: unchanged requirements are not installed again)",
    )
    add_ssh_arguments(parser)
    parser.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        metavar="-- python SCRIPT.py ARGS | -- python -m PACKAGE.MODULE ARGS",
        help="your program; without it, the built-in trainer",
    )
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


def user_command(args: argparse.Namespace) -> tuple[UserCommand, Path] | None:
    """The program after `--` and its project folder, checked; None for the trainer."""
    words = list(args.command)
    if not words:
        if args.workdir is not None or args.install_deps:
            raise UsageError("--workdir and --install-deps need a command after --")
        return None
    if words[0] != "--":
        raise UsageError(
            f"unexpected {words[0]!r}: put your command after --, e.g. "
            "`minicluster run-job --local -- python train.py`"
        )
    root = (args.workdir or Path.cwd()).expanduser()
    if not root.is_dir():
        raise UsageError(f"--workdir {root}: no such folder")
    try:
        command = parse_command(words[1:], root)
    except CommandError as exc:
        raise UsageError(str(exc)) from None
    return command, root.resolve()


def _prepare_user_job(
    args: argparse.Namespace, config: Config, command: UserCommand, root: Path
) -> tuple[UserJob, dict]:
    """Ship the project to every node and make its job environments; nothing is started."""
    files = project_files(root)
    if command.script and command.script not in files.manifest:
        raise CommandError(f"{command.script} is not shipped (.gitignore excludes it)")
    key = project_key(root)
    places = {
        node.name: placement(node, key, local_python() if node.is_loopback else node.venv_python)
        for node in config.nodes
    }
    console = Console(stderr=True, soft_wrap=True)
    console.print(
        f"shipping {root} ({len(files.manifest)} files) to "
        + ", ".join(n.name for n in config.nodes),
        markup=False,
        highlight=False,
    )
    shipments = ship(config, files, places, ssh_settings(args), args.install_deps)
    for shipment in shipments:
        console.print(shipment.describe() + "; copy verified", markup=False, highlight=False)
    user = UserJob(
        target=command.target,
        places={name: (p.python, p.tree) for name, p in places.items()},
    )
    project = {
        "command": str(command),
        "workdir": str(root),
        "manifest_sha256": files.digest,
        "files": len(files.manifest),
        "bytes": files.total_bytes,
        "shipped": [vars(s) for s in shipments],
    }
    return user, project


def run(args: argparse.Namespace) -> int:
    options = _options(args)
    if options.max_restarts is not None and options.max_restarts < 0:
        raise UsageError("--max-restarts must be 0 or more")
    wanted = user_command(args)
    if wanted is not None:
        given = [n for n in TRAINER_ONLY if getattr(options, n) is not None]
        if given:
            flag = TRAINER_ONLY[given[0]]
            raise UsageError(f"{flag} is for the built-in trainer; pass your program its own")
    base = config_from_args(args)
    source = LOCAL_SOURCE if args.local else (args.config or "config.yaml")
    require_real_addresses(base, source)
    config = with_overrides(base, options, f"{source} with command-line overrides")
    user = project = None
    if wanted is not None:
        try:
            user, project = _prepare_user_job(args, config, *wanted)
        except CommandError as exc:
            raise UsageError(str(exc)) from None
        except ShipError as exc:
            Console(stderr=True, soft_wrap=True).print(
                f"not started: {exc}", style="red", markup=False, highlight=False
            )
            return EXIT_NOT_SHIPPED
    setup = JobSetup(
        config=config,
        options=options,
        config_paths=_config_paths(base, args),
        logs_dir=args.logs_dir,
        runs_dir=args.runs_dir,
        ssh=ssh_settings(args),
        grace_seconds=args.grace,
        verbose=args.verbose,
        user=user,
        project=project,
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
