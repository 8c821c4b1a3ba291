"""Process-group setup: read torchrun's environment, pick device and backend, connect.

The backend follows the device (pytorch/examples' DDP pattern): nccl for CUDA, gloo for
everything else. gloo takes no MPS tensors, so on a Mac the gradients go through CPU
memory (see `staged.py`). torchrun sets RANK, LOCAL_RANK, WORLD_SIZE and the rendezvous
address; without torchrun the trainer runs as a one-process group.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import psutil
import torch
import torch.distributed as dist

from minicluster.core.config import ConfigError
from minicluster.trainer.rendezvous import session_store

GLOO_IFNAME = "GLOO_SOCKET_IFNAME"


@dataclass(frozen=True)
class RankEnv:
    """Who this process is in the job, from torchrun's environment variables."""

    rank: int
    local_rank: int
    world_size: int
    restart_count: int  # TORCHELASTIC_RESTART_COUNT: how often torchrun restarted the group
    under_torchrun: bool


@dataclass(frozen=True)
class Distributed:
    env: RankEnv
    device: torch.device
    backend: str
    gloo_interface: str | None  # what GLOO_SOCKET_IFNAME was set to, if we set it


def rank_env(env: Mapping[str, str] | None = None) -> RankEnv:
    env = os.environ if env is None else env
    under_torchrun = "RANK" in env and "WORLD_SIZE" in env
    return RankEnv(
        rank=int(env.get("RANK", 0)),
        local_rank=int(env.get("LOCAL_RANK", 0)),
        world_size=int(env.get("WORLD_SIZE", 1)),
        restart_count=int(env.get("TORCHELASTIC_RESTART_COUNT", 0)),
        under_torchrun=under_torchrun,
    )


def pick_device(requested: str, local_rank: int) -> torch.device:
    """auto prefers CUDA, then MPS, then CPU; an explicit device must exist."""
    cuda = torch.cuda.is_available()
    mps = torch.backends.mps.is_available()
    if requested == "auto":
        requested = "cuda" if cuda else "mps" if mps else "cpu"
    if requested == "cuda":
        if not cuda:
            raise ConfigError(
                "settings", "trainer.device", "cuda was asked for but no GPU is visible"
            )
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if requested == "mps":
        if not mps:
            raise ConfigError(
                "settings", "trainer.device", "mps was asked for but is not available"
            )
        return torch.device("mps")
    return torch.device("cpu")


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" and dist.is_nccl_available() else "gloo"


def gloo_interface(
    interface: str | None, available: Iterable[str] | None = None, env: Mapping | None = None
) -> str | None:
    """The interface to pin gloo to, or None to leave gloo's own choice alone.

    gloo otherwise binds to whatever the hostname resolves to, on a Mac often a `.local`
    name, an IPv6 link-local address or loopback. An explicit GLOO_SOCKET_IFNAME in the
    environment wins; a configured interface this host lacks (a config written for
    another machine) is ignored rather than failing the job at connect time.
    """
    env = os.environ if env is None else env
    if not interface or env.get(GLOO_IFNAME):
        return None
    names = set(psutil.net_if_addrs()) if available is None else set(available)
    return interface if interface in names else None


def init_distributed(device_name: str, interface: str | None, timeout_s: int) -> Distributed:
    env = rank_env()
    device = pick_device(device_name, env.local_rank)
    backend = backend_for(device)
    pinned = gloo_interface(interface) if backend == "gloo" else None
    if pinned:
        os.environ[GLOO_IFNAME] = pinned
    timeout = timedelta(seconds=timeout_s)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    environ = os.environ
    if env.under_torchrun and environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        store = session_store(
            environ["MASTER_ADDR"], int(environ["MASTER_PORT"]), env.rank, env.world_size, timeout
        )
        dist.init_process_group(
            backend, store=store, rank=env.rank, world_size=env.world_size, timeout=timeout
        )
    elif env.under_torchrun:
        dist.init_process_group(backend, timeout=timeout)  # a fresh store per attempt
    else:
        dist.init_process_group(
            backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout
        )
    return Distributed(env=env, device=device, backend=backend, gloo_interface=pinned)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
