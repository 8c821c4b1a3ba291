"""The job's TCPStore servers, each listening on its node's configured address only.

torch's TCPStore server binds every interface (`*:PORT`) whatever host name it is given;
only a socket handed to it (`master_listen_fd`) can narrow that. A job has two stores, and
`python -m minicluster.launcher.jobstore MODE -m MODULE ARGS` hosts one on a socket bound
to one address, then runs `python -m MODULE ARGS` in the same process, so the store closes
when that program ends:

- `rendezvous -m torch.distributed.run ARGS`, on the master: the rendezvous store, on the
  address and port of torchrun's own `--rdzv-endpoint`. Every torchrun, this one
  included, joins with `is_host=0`, so none of them opens a listener.
- `rank -m PROGRAM ARGS`, what torchrun starts for each rank. The nodes run torchrun with
  TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1, so no torchrun hosts a store for the ranks (with
  sharing on, the agent of group rank 0 listens on `*:<random port>`); global rank 0
  hosts it instead, on MASTER_ADDR, which is its node's `--local-addr`. The program's
  `init_process_group` (env://) asks for a multi-tenant server on that port and gets
  this one.
"""

from __future__ import annotations

import argparse
import os
import runpy
import socket
import sys
from datetime import timedelta

USAGE = "usage: python -m minicluster.launcher.jobstore {rendezvous|rank} -m MODULE [ARGS...]"
# The rendezvous endpoint's port when it names none (torchrun's own default).
DEFAULT_RENDEZVOUS_PORT = 29400


class StoreError(Exception):
    """The store could not listen where it must; the message says where and why."""


def listen_on(address: str, port: int) -> socket.socket:
    """A TCP socket listening on `address` (an IP or a host name) and `port`, only there."""
    try:
        family, kind, proto, _name, sockaddr = socket.getaddrinfo(
            address, port, type=socket.SOCK_STREAM
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise StoreError(f"cannot resolve {address}: {exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        # As torch's own server does: a port left in TIME_WAIT by a previous job is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        raise StoreError(f"cannot listen on {address} port {port}: {exc.strerror}") from None
    return sock


def host_store(address: str, port: int, timeout: timedelta = timedelta(minutes=5)):
    """A TCPStore server on `address`:`port` only. It stays open while the returned object
    lives. Multi-tenant, so a later TCPStore(is_master=True, multi_tenant=True) in this
    process on the same port shares it instead of binding every interface."""
    import torch.distributed as dist  # only the processes that host a store pay the import

    sock = listen_on(address, port)
    return dist.TCPStore(
        address,
        sock.getsockname()[1],
        is_master=True,
        timeout=timeout,
        wait_for_workers=False,
        multi_tenant=True,
        master_listen_fd=sock.detach(),  # the store's server owns and closes it
    )


def rendezvous_address(torchrun_args: list[str]) -> tuple[str, int]:
    """The address and port of torchrun's `--rdzv-endpoint` among its arguments."""
    from torch.distributed.elastic.rendezvous.utils import parse_rendezvous_endpoint

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--rdzv-endpoint", "--rdzv_endpoint", default="")
    endpoint = parser.parse_known_args(torchrun_args)[0].rdzv_endpoint
    if not endpoint:
        raise StoreError("torchrun is given no --rdzv-endpoint to host")
    return parse_rendezvous_endpoint(endpoint, DEFAULT_RENDEZVOUS_PORT)


def host_rendezvous(torchrun_args: list[str]):
    return host_store(*rendezvous_address(torchrun_args))


def host_ranks_store(env: dict[str, str]):
    """On global rank 0, the ranks' store on MASTER_ADDR:MASTER_PORT; None elsewhere, and
    when torchrun shares its own store with the ranks (TORCHELASTIC_USE_AGENT_STORE=True:
    every rank is a client of the agent's)."""
    if (
        env.get("RANK") == "0"
        and env.get("TORCHELASTIC_USE_AGENT_STORE") != "True"
        and env.get("MASTER_ADDR")
        and env.get("MASTER_PORT")
    ):
        return host_store(env["MASTER_ADDR"], int(env["MASTER_PORT"]))
    return None


def run_module(module: str, args: list[str]) -> None:
    """`python -m module args`, in this process."""
    sys.argv = [module, *args]  # runpy puts the module's file in argv[0], as -m does
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] not in ("rendezvous", "rank") or argv[1] != "-m":
        print(USAGE, file=sys.stderr)
        return 2
    mode, module, args = argv[0], argv[2], argv[3:]
    try:
        store = host_rendezvous(args) if mode == "rendezvous" else host_ranks_store(os.environ)
    except StoreError as exc:
        print(f"jobstore: {exc}", file=sys.stderr)
        return 1
    run_module(module, args)
    del store  # held open until the program has ended
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
