"""Where a tracked rank gets its settings: environment, config.yaml, defaults.

See the package docstring (minicluster.track) for the precedence, which this module
implements. Nothing here raises: a missing or bad config becomes a warning and the
defaults, because instrumentation must never stop the user's program.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from minicluster.core import layout
from minicluster.core.config import Config, ConfigError, NodeSettings, load_config
from minicluster.track.tls import TlsFiles

DEFAULT_CONFIG = "/opt/minicluster/config.yaml"
DEFAULT_BASE_PORT = 9400
DEFAULT_LOG_INTERVAL = 10

ENV_CONFIG = "MINICLUSTER_CONFIG"
ENV_NODE = "MINICLUSTER_NODE"
ENV_JOB_ID = "MINICLUSTER_JOB_ID"
ENV_PORT = "MINICLUSTER_METRICS_PORT"
ENV_ADDRESS = "MINICLUSTER_METRICS_ADDRESS"
ENV_RUN_DIR = "MINICLUSTER_RUN_DIR"
ENV_LOG_DIR = "MINICLUSTER_LOG_DIR"
ENV_LOG_INTERVAL = "MINICLUSTER_LOG_INTERVAL"
ENV_LINGER = "MINICLUSTER_LINGER"


@dataclass(frozen=True)
class TrackSettings:
    job_id: str
    node: str
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    restart_count: int = 0
    metrics_address: str = "127.0.0.1"
    metrics_port: int | None = None  # None: no endpoint; 0: any free port
    run_dir: Path | None = None  # discovery files; None: not registered
    log_dir: Path | None = None  # this job's rank logs; None: stdout only
    log_interval: int = DEFAULT_LOG_INTERVAL
    linger_seconds: float = 0.0
    tls: TlsFiles | None = None  # None: plain HTTP (no config, or security.tls off)
    warnings: tuple[str, ...] = field(default=(), compare=False)


def hostname() -> str:
    return socket.gethostname().split(".")[0].lower()


def fresh_job_id() -> str:
    return time.strftime("job-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def tls_files(config: Config, node: NodeSettings) -> TlsFiles | None:
    """The node's TLS files when its config turns TLS on (checked only when serving)."""
    if not config.security.tls:
        return None

    def path(name: str) -> Path:
        return Path(layout.tls_path(node, name))

    return TlsFiles(ca=path("ca.crt"), cert=path("node.crt"), key=path("node.key"))


def _int(env: Mapping[str, str], name: str, default: int, warnings: list[str]) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        warnings.append(f"{name}={raw!r} is not an integer; using {default}")
        return default


def _float(env: Mapping[str, str], name: str, default: float, warnings: list[str]) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        warnings.append(f"{name}={raw!r} is not a number >= 0; using {default:g}")
        return default
    return value


def _config(env: Mapping[str, str], warnings: list[str]) -> tuple[Config | None, str | None]:
    explicit = env.get(ENV_CONFIG)
    path = explicit or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None)
    if path is None:
        return None, None
    try:
        return load_config(path), path
    except ConfigError as exc:
        warnings.append(f"{exc}; metrics without discovery")
        return None, path


def resolve(env: Mapping[str, str] | None = None) -> TrackSettings:
    env = os.environ if env is None else env
    warnings: list[str] = []
    rank = _int(env, "RANK", 0, warnings)
    local_rank = _int(env, "LOCAL_RANK", 0, warnings)
    world_size = _int(env, "WORLD_SIZE", 1, warnings)
    restarts = _int(env, "TORCHELASTIC_RESTART_COUNT", 0, warnings)
    job_id = env.get(ENV_JOB_ID) or env.get("TORCHELASTIC_RUN_ID") or fresh_job_id()
    node_name = env.get(ENV_NODE) or hostname()

    config, source = _config(env, warnings)
    node = None
    if config is not None:
        try:
            node = config.node(node_name)
        except KeyError:
            warnings.append(f"{source}: no node named {node_name!r}; metrics without discovery")
    if config is not None and node is not None:
        base_port = config.metrics_base_port(node)
        address = node.address
        run_dir: Path | None = Path(layout.run_dir(node))
        trainer = config.trainer
        log_dir: Path | None = Path(layout.job_log_dir(node, trainer, job_id))
        log_interval, linger = trainer.log_interval, trainer.linger_seconds
        tls = tls_files(config, node)
    else:
        # Without the node's config: plain HTTP on loopback (unless the environment
        # moves it), where no one else on the LAN reaches it.
        base_port, address, run_dir, log_dir = DEFAULT_BASE_PORT, "127.0.0.1", None, None
        log_interval, linger, tls = DEFAULT_LOG_INTERVAL, 0.0, None

    port: int | None = base_port + local_rank
    raw_port = env.get(ENV_PORT, "")
    if raw_port.lower() == "off":
        port = None
    elif raw_port:
        port = _int(env, ENV_PORT, base_port, warnings) + local_rank
        if raw_port == "0":
            port = 0  # any free port for every rank; discovery carries the real one
    if env.get(ENV_RUN_DIR):
        run_dir = Path(env[ENV_RUN_DIR])
    if env.get(ENV_LOG_DIR):
        log_dir = Path(env[ENV_LOG_DIR]) / job_id
    return TrackSettings(
        job_id=job_id,
        node=node_name,
        rank=rank,
        local_rank=local_rank,
        world_size=world_size,
        restart_count=restarts,
        metrics_address=env.get(ENV_ADDRESS) or address,
        metrics_port=port,
        run_dir=run_dir,
        log_dir=log_dir,
        log_interval=max(1, _int(env, ENV_LOG_INTERVAL, log_interval, warnings)),
        linger_seconds=_float(env, ENV_LINGER, linger, warnings),
        tls=tls,
        warnings=tuple(warnings),
    )
