"""What one rank runs with: built-in defaults, then config.yaml, then command-line flags.

Without `--config` the trainer runs on `TrainerSettings()` defaults on this host (node name
= short hostname, metrics on 127.0.0.1, files under the per-user state dir). With
`--config` it reads the `trainer` section and this node's entry (address, interface,
install_dir). Flags override both. Bad input raises `ConfigError` naming the flag or key.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from minicluster.core import layout
from minicluster.core.config import ConfigError, NodeSettings, TrainerSettings, load_config
from minicluster.core.profiles import default_state_dir
from minicluster.track.settings import tls_files
from minicluster.track.tls import TlsFiles, server_context

CLI_SOURCE = "command line"
GRAD_SYNC_CHOICES = ("auto", "ddp", "staged")
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

# Flags that override a field of the config's `trainer` section: flag dest -> field.
_TRAINER_FLAGS = {
    "steps": "steps",
    "batch_size": "batch_size",
    "model": "model",
    "metrics_base_port": "metrics_base_port",
    "checkpoint_interval": "checkpoint_interval",
    "log_interval": "log_interval",
    "device": "device",
    "pg_timeout_seconds": "pg_timeout_seconds",
    "linger": "linger_seconds",
    "seed": "seed",
    "grad_compression": "grad_compression",
    "bucket_cap_mb": "bucket_cap_mb",
}


@dataclass(frozen=True)
class RunSettings:
    """Everything a rank needs besides what torchrun puts in its environment."""

    trainer: TrainerSettings
    node: str
    job_id: str
    metrics_enabled: bool
    metrics_address: str
    metrics_base_port: int
    checkpoint_dir: Path  # this node's folder; the job's checkpoints go below it
    log_dir: Path
    run_dir: Path  # discovery files for the exporter's /sd
    interface: str | None  # the training link, for GLOO_SOCKET_IFNAME
    grad_sync: str  # auto | ddp | staged
    step_sleep_seconds: float
    tls: TlsFiles | None = None  # the node's files for a mutual-TLS endpoint; None: plain

    @property
    def job_checkpoint_dir(self) -> Path:
        return self.checkpoint_dir / self.job_id

    @property
    def job_log_dir(self) -> Path:
        return self.log_dir / self.job_id


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m minicluster.trainer",
        description="One rank of a DDP training job; run it under torchrun.",
    )
    add = parser.add_argument
    add("--config", metavar="FILE", help="config.yaml (default: built-in trainer defaults)")
    add("--node", metavar="NAME", help="this node's name in the config (default: hostname)")
    add("--job-id", metavar="ID", help="default: TORCHELASTIC_RUN_ID, else a fresh id")
    add("--steps", type=int, metavar="N")
    add("--batch-size", type=int, metavar="N", help="samples per rank per step")
    add("--model", choices=["mlp", "transformer"])
    add("--metrics-base-port", type=int, metavar="P", help="rank's port = P + local rank")
    add("--metrics-address", metavar="HOST", help="address the metrics endpoint binds to")
    add("--checkpoint-dir", metavar="DIR")
    add("--log-dir", metavar="DIR")
    add("--checkpoint-interval", type=int, metavar="N", help="steps between checkpoints, 0=off")
    add("--log-interval", type=int, metavar="N", help="steps between log lines")
    add("--device", choices=["auto", "cpu", "mps", "cuda"])
    add("--pg-timeout-seconds", type=int, metavar="S", help="collective timeout")
    add("--linger", type=float, metavar="S", help="keep /metrics up S seconds after the end")
    add("--run-dir", metavar="DIR", help="where the discovery file goes")
    add("--seed", type=int, metavar="N")
    add("--no-metrics", action="store_true", help="no endpoint, no comm hook (for benchmarks)")
    add(
        "--grad-sync",
        choices=GRAD_SYNC_CHOICES,
        default="auto",
        help="ddp, or staged through CPU memory (what MPS needs); auto picks by device",
    )
    add("--grad-compression", choices=["none", "fp16", "bf16", "powersgd"])
    add("--bucket-cap-mb", type=float, metavar="MB", help="DDP gradient bucket size")
    add(
        "--step-sleep",
        type=float,
        default=0.0,
        metavar="S",
        help="pause S seconds after each step (demos and fault-injection tests)",
    )
    return parser


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _trainer_with_overrides(base: TrainerSettings, args: argparse.Namespace) -> TrainerSettings:
    overrides = {
        field: getattr(args, dest)
        for dest, field in _TRAINER_FLAGS.items()
        if getattr(args, dest) is not None
    }
    try:
        return TrainerSettings.model_validate({**base.model_dump(), **overrides})
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0])
        dest = next((d for d, f in _TRAINER_FLAGS.items() if f == field), field)
        raise ConfigError(CLI_SOURCE, _flag(dest), error["msg"]) from None


def _absolute(value: str) -> Path:
    return Path(value).expanduser().absolute()


def _pick_node(config, requested: str | None, source: str) -> NodeSettings:
    name = requested or socket.gethostname().split(".")[0].lower()
    try:
        return config.node(name)
    except KeyError as exc:
        where = "--node" if requested else "nodes"
        hint = "" if requested else " (this host's name); pass --node NAME"
        raise ConfigError(source, where, f"{exc.args[0]}{hint}") from None


def _job_id(requested: str | None, env: Mapping[str, str]) -> str:
    job_id = requested or env.get("TORCHELASTIC_RUN_ID")
    if not job_id:
        job_id = time.strftime("job-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    if not _JOB_ID.match(job_id):
        raise ConfigError(
            CLI_SOURCE, "--job-id", f"{job_id!r}: use letters, digits, '.', '_' and '-'"
        )
    return job_id


def resolve(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> RunSettings:
    """Merge defaults, the config file and the flags into one RunSettings."""
    env = os.environ if env is None else env
    if args.step_sleep < 0:
        raise ConfigError(CLI_SOURCE, "--step-sleep", "must be >= 0")
    if args.config:
        config = load_config(args.config)
        node = _pick_node(config, args.node, args.config)
        trainer = _trainer_with_overrides(config.trainer, args)
        node_name, address, interface = node.name, node.address, node.interface
        base_port = config.metrics_base_port(node)
        checkpoint_dir = Path(layout.checkpoint_dir(node, trainer))
        log_dir = Path(layout.rank_log_dir(node, trainer))
        run_dir = Path(layout.run_dir(node))
        tls = tls_files(config, node)
        if tls is not None and not args.no_metrics:
            server_context(tls)  # a missing file: one line before joining the job
    else:
        trainer = _trainer_with_overrides(TrainerSettings(), args)
        node_name = args.node or socket.gethostname().split(".")[0].lower()
        address, interface = "127.0.0.1", None
        base_port = trainer.metrics_base_port
        state = default_state_dir()
        checkpoint_dir = state / trainer.checkpoint_dir
        log_dir = state / trainer.log_dir
        run_dir = state / "run"
        tls = None
    return RunSettings(
        trainer=trainer,
        node=node_name,
        job_id=_job_id(args.job_id, env),
        metrics_enabled=not args.no_metrics,
        metrics_address=args.metrics_address or address,
        metrics_base_port=args.metrics_base_port or base_port,
        checkpoint_dir=_absolute(args.checkpoint_dir) if args.checkpoint_dir else checkpoint_dir,
        log_dir=_absolute(args.log_dir) if args.log_dir else log_dir,
        run_dir=_absolute(args.run_dir) if args.run_dir else run_dir,
        interface=interface,
        grad_sync=args.grad_sync,
        step_sleep_seconds=args.step_sleep,
        tls=tls,
    )


def settings_from_argv(argv: list[str] | None = None) -> RunSettings:
    return resolve(build_parser().parse_args(argv))
