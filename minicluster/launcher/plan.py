"""The command line each node runs for one job: torchrun with c10d rendezvous, then the trainer.

Every node gets the same torchrun arguments except `--local-addr` (the node's configured
address, so gloo and the rendezvous never pick loopback or an IPv6 link-local address).
Every torchrun joins the rendezvous with `is_host=0` (decided here rather than guessed
from host names, which on a Mac often resolve to a `.local` name): the master's runs inside
`jobstore`, which hosts the store on the master's address only. The ranks' own store is
hosted the same way by global rank 0 (see jobstore.py), on its node's address.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from minicluster.core.config import Config, NodeSettings, parse_config

# The remote shell's login environment is not trusted for anything (a PYTHONPATH set in a
# login profile is missing from a non-login ssh shell): the interpreter is an absolute path
# and the module is installed in it.
TORCHRUN_MODULE = "torch.distributed.run"
# Hosts a job's TCPStore servers on one address, then runs `-m MODULE ARGS`: torchrun on
# the master ("rendezvous"), every rank's program ("rank").
JOBSTORE_MODULE = "minicluster.launcher.jobstore"
TRAINER_MODULE = "minicluster.trainer"
# Runs a user's `SCRIPT.py ARGS` or `-m PKG.MOD ARGS` (runpy) with per-rank observation.
OBSERVE_MODULE = "minicluster.track.observe"


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
    grad_compression: str | None = None  # none | fp16 | bf16 | powersgd
    bucket_cap_mb: float | None = None
    # torchrun-level settings
    nproc_per_node: int | None = None
    max_restarts: int | None = None
    rendezvous_port: int | None = None


# JobOptions field -> trainer flag (the trainer's command-line contract).
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
    "grad_compression": "--grad-compression",
    "bucket_cap_mb": "--bucket-cap-mb",
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
    cwd: str | None = None  # the shipped project, for a user's command

    @property
    def runs_here(self) -> bool:
        """A loopback node is this machine: start it as a child process, no ssh."""
        return self.node.is_loopback


@dataclass(frozen=True)
class UserJob:
    """A user's program: what follows `python`, and per node (interpreter, folder)."""

    target: list[str]
    places: dict[str, tuple[str, str]]


@dataclass(frozen=True)
class JobPlan:
    job_id: str
    commands: list[NodeCommand]
    target_steps: int  # 0: unknown until the ranks report a target (a user's program)
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


def torchrun_argv(config: Config, node: NodeSettings, job_id: str, python: str) -> list[str]:
    """torchrun with the job's rendezvous, interface and restart settings (any workload),
    ending in the rank wrapper: what follows is the module each rank runs and its args."""
    trainer = config.trainer
    # No torchrun hosts the rendezvous store: on the master, jobstore hosts it on the
    # master's address before torchrun starts (torchrun's own would listen on `*`).
    host = [JOBSTORE_MODULE, "rendezvous", "-m"] if node.role == "master" else []
    return [
        python,
        "-m",
        *host,
        TORCHRUN_MODULE,
        f"--nnodes={len(config.nodes)}",
        f"--nproc-per-node={trainer.nproc_per_node}",
        f"--max-restarts={trainer.max_restarts}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={_host_port(config.master.address, trainer.rendezvous_port)}",
        f"--rdzv-id={job_id}",
        f"--rdzv-conf=is_host=0,join_timeout={trainer.rendezvous_timeout_seconds}",
        f"--local-addr={node.address}",
        "-m",
        # Without "--", torchrun's argparse sees a program's own options (the trainer's
        # --node) as abbreviations of its own (--node-rank) and exits with a usage error.
        "--",
        JOBSTORE_MODULE,
        "rank",
        "-m",
    ]


def node_env(node: NodeSettings) -> dict[str, str]:
    return {
        "GLOO_SOCKET_IFNAME": node.interface,
        "PYTHONUNBUFFERED": "1",
        # torchrun then hosts no store for the ranks (its agent's listens on `*`); global
        # rank 0 hosts one on its node's address instead (jobstore's `rank`).
        "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1",
    }


def node_command(
    config: Config,
    node: NodeSettings,
    job_id: str,
    config_path: str,
    options: JobOptions,
    python: str,
) -> NodeCommand:
    argv = [
        *torchrun_argv(config, node, job_id, python),
        TRAINER_MODULE,
        "--config",
        config_path,
        "--node",
        node.name,
        "--job-id",
        job_id,
        *trainer_overrides(options),
    ]
    return NodeCommand(node=node, argv=argv, env=node_env(node))


def user_node_command(
    config: Config,
    node: NodeSettings,
    job_id: str,
    config_path: str,
    python: str,
    cwd: str,
    target: list[str],
    options: JobOptions | None = None,
) -> NodeCommand:
    """torchrun of the user's `python TARGET` in the shipped project, observed per rank.

    `python` is the project's job environment on that node: torchrun starts its workers
    with its own interpreter, so they get the project's imports without PYTHONPATH.
    """
    argv = [*torchrun_argv(config, node, job_id, python), OBSERVE_MODULE, *target]
    env = {
        **node_env(node),
        "MINICLUSTER_CONFIG": config_path,
        "MINICLUSTER_NODE": node.name,
        "MINICLUSTER_JOB_ID": job_id,
        **user_settings(options or JobOptions()),
    }
    return NodeCommand(node=node, argv=argv, env=env, cwd=cwd)


# JobOptions a user's program takes too, through minicluster.track's environment.
USER_SETTINGS = {
    "log_interval": "MINICLUSTER_LOG_INTERVAL",
    "linger_seconds": "MINICLUSTER_LINGER",
}
# Options that only the built-in trainer understands: name -> its flag.
TRAINER_ONLY = {name: flag for name, flag in _TRAINER_FLAGS.items() if name not in USER_SETTINGS}


def user_settings(options: JobOptions) -> dict[str, str]:
    env = {
        variable: str(getattr(options, name))
        for name, variable in USER_SETTINGS.items()
        if getattr(options, name) is not None
    }
    if options.no_metrics:
        env["MINICLUSTER_METRICS_PORT"] = "off"
    return env


def plan_job(
    config: Config,
    options: JobOptions,
    config_paths: dict[str, str],
    job_id: str | None = None,
    local_python: str | None = None,
    user: UserJob | None = None,
) -> JobPlan:
    """One command per node; `config_paths` maps node name -> config.yaml path on that node.

    `config` must already have the overrides applied (`with_overrides`). Loopback nodes
    run `local_python` (the launcher's own interpreter); every other node runs its venv
    python by absolute path. With `user`, every node runs the user's program instead of
    the built-in trainer, with the interpreter and folder `user.places` names.
    """
    job_id = job_id or new_job_id()
    commands = []
    for node in config.nodes:
        if user is not None:
            python, cwd = user.places[node.name]
            command = user_node_command(
                config, node, job_id, config_paths[node.name], python, cwd, user.target, options
            )
        else:
            python = local_python if (node.is_loopback and local_python) else node.venv_python
            command = node_command(config, node, job_id, config_paths[node.name], options, python)
        commands.append(command)
    return JobPlan(
        job_id=job_id,
        commands=commands,
        target_steps=0 if user is not None else config.trainer.steps,
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
