"""The command line each node runs for one job: torchrun with c10d rendezvous, then the trainer.

Every node gets the same torchrun arguments except `is_host` (only the master hosts the
rendezvous store, decided here rather than guessed from host names, which on a Mac often
resolve to a `.local` name) and `--local-addr` (the node's configured address, so gloo and
the rendezvous never pick loopback or an IPv6 link-local address).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from minicluster.core.config import Config, NodeSettings, parse_config

# The remote shell's login environment is not trusted for anything (see the roadmap's
# PYTHONPATH saga): the interpreter is an absolute path and the module is installed in it.
TORCHRUN_MODULE = "torch.distributed.run"
TRAINER_MODULE = "minicluster.trainer"


@dataclass(frozen=True)
class JobOptions:
    """Command-line overrides of config.yaml; None means "as configured"."""

    steps: int | None = None
    batch_size: int | None = None
    model: str | None = None
    device: str | None = None
    seed: int | None = None
    checkpoint_interval: int | None = None
    log_interval: int | None = None
    pg_timeout_seconds: int | None = None
    linger_seconds: float | None = None
    no_metrics: bool = False
    step_sleep: float | None = None  # a pause after each step (demos, fault injection)
    # torchrun-level settings
    nproc_per_node: int | None = None
    max_restarts: int | None = None
    rendezvous_port: int | None = None


# JobOptions field -> trainer flag (the trainer CLI contract in the team brief).
_TRAINER_FLAGS = {
    "steps": "--steps",
    "batch_size": "--batch-size",
    "model": "--model",
    "device": "--device",
    "seed": "--seed",
    "checkpoint_interval": "--checkpoint-interval",
    "log_interval": "--log-interval",
    "pg_timeout_seconds": "--pg-timeout-seconds",
    "linger_seconds": "--linger",
    "step_sleep": "--step-sleep",
}


# JobOptions fields that override the config's trainer section (same names there).
_TRAINER_FIELDS = (
    *(name for name in _TRAINER_FLAGS if name != "step_sleep"),
    "nproc_per_node",
    "max_restarts",
    "rendezvous_port",
)


@dataclass(frozen=True)
class NodeCommand:
    node: NodeSettings
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def runs_here(self) -> bool:
        """A loopback node is this machine: start it as a child process, no ssh."""
        return self.node.is_loopback


@dataclass(frozen=True)
class JobPlan:
    job_id: str
    commands: list[NodeCommand]
    target_steps: int
    world_size: int
    nproc_per_node: int


def new_job_id(now: float | None = None) -> str:
    """Sortable by start time, unique across launches in the same second."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    return f"{stamp}-{secrets.token_hex(3)}"


def _host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def trainer_overrides(options: JobOptions) -> list[str]:
    flags: list[str] = []
    for name, flag in _TRAINER_FLAGS.items():
        value = getattr(options, name)
        if value is not None:
            flags += [flag, str(value)]
    if options.no_metrics:
        flags.append("--no-metrics")
    return flags


def node_command(
    config: Config,
    node: NodeSettings,
    job_id: str,
    config_path: str,
    options: JobOptions,
    python: str,
) -> NodeCommand:
    trainer = config.trainer
    is_host = 1 if node.role == "master" else 0
    argv = [
        python,
        "-m",
        TORCHRUN_MODULE,
        f"--nnodes={len(config.nodes)}",
        f"--nproc-per-node={trainer.nproc_per_node}",
        f"--max-restarts={trainer.max_restarts}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={_host_port(config.master.address, trainer.rendezvous_port)}",
        f"--rdzv-id={job_id}",
        f"--rdzv-conf=is_host={is_host},join_timeout={trainer.rendezvous_timeout_seconds}",
        f"--local-addr={node.address}",
        "-m",
        # Without "--", torchrun's argparse sees the trainer's --node as an ambiguous
        # abbreviation of its own --node-rank and exits with a usage error.
        "--",
        TRAINER_MODULE,
        "--config",
        config_path,
        "--node",
        node.name,
        "--job-id",
        job_id,
        *trainer_overrides(options),
    ]
    env = {"GLOO_SOCKET_IFNAME": node.interface, "PYTHONUNBUFFERED": "1"}
    return NodeCommand(node=node, argv=argv, env=env)


def plan_job(
    config: Config,
    options: JobOptions,
    config_paths: dict[str, str],
    job_id: str | None = None,
    local_python: str | None = None,
) -> JobPlan:
    """One command per node; `config_paths` maps node name -> config.yaml path on that node.

    `config` must already have the overrides applied (`with_overrides`). Loopback nodes
    run `local_python` (the launcher's own interpreter); every other node runs its venv
    python by absolute path.
    """
    job_id = job_id or new_job_id()
    commands = []
    for node in config.nodes:
        python = local_python if (node.is_loopback and local_python) else node.venv_python
        commands.append(
            node_command(config, node, job_id, config_paths[node.name], options, python)
        )
    return JobPlan(
        job_id=job_id,
        commands=commands,
        target_steps=config.trainer.steps,
        world_size=config.world_size,
        nproc_per_node=config.trainer.nproc_per_node,
    )


def with_overrides(config: Config, options: JobOptions, source: str) -> Config:
    """The config with the command-line overrides applied and checked like the file was
    (ranges, and port clashes for a new rendezvous port)."""
    trainer = config.trainer.model_dump(mode="json")
    for name in _TRAINER_FIELDS:
        value = getattr(options, name)
        if value is not None:
            trainer[name] = value
    return parse_config({**config.model_dump(mode="json"), "trainer": trainer}, source)
