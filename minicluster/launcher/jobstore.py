"""The job's TCPStore servers, each listening on its node's configured address only.

torch's TCPStore server binds every interface (`*:PORT`) whatever host name it is given;
only a socket handed to it (`master_listen_fd`) can narrow that. A job has two stores, and
this module hosts both on a socket bound to one address:

- The rendezvous store. `python -m minicluster.launcher.jobstore torchrun ARGS` runs on
  the master: it hosts the store on the address and port of torchrun's own
  `--rdzv-endpoint`, then runs torchrun in the same process. Every torchrun, this one
  included, joins with `is_host=0`, so none of them opens a listener; the store closes
  when this process (the master's torchrun) exits.
- The ranks' store (MASTER_ADDR:MASTER_PORT). The nodes run torchrun with
  TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1, so no torchrun hosts a store of its own for the
  ranks (with sharing on, the agent of group rank 0 listens on `*:<random port>`).
  `python -m minicluster.launcher.jobstore rank MODULE ARGS` runs each rank's program; on
  global rank 0 it first hosts that store on MASTER_ADDR, which is that node's
  `--local-addr`. The program's `init_process_group` (env://) asks for a multi-tenant
  server on the same port and gets this one; the store closes when rank 0 exits.
"""

from __future__ import annotations

import os
import runpy
import socket
import sys
from datetime import timedelta

USAGE = "usage: python -m minicluster.launcher.jobstore {torchrun ARGS | rank MODULE ARGS}"
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


def run_torchrun(args: list[str]) -> None:
    """torchrun with `args`, in this process, after hosting its rendezvous store."""
    from torch.distributed.elastic.rendezvous.utils import parse_rendezvous_endpoint
    from torch.distributed.run import main, parse_args

    endpoint = parse_args(args).rdzv_endpoint
    address, port = parse_rendezvous_endpoint(endpoint, DEFAULT_RENDEZVOUS_PORT)
    store = host_store(address, port)
    try:
        main(args)
    finally:
        del store  # held open until torchrun has ended


def run_rank(module: str, args: list[str], env: dict[str, str] | None = None) -> None:
    """`python -m module args` in this process; global rank 0 hosts the ranks' store first.

    When torchrun shares its own store with the ranks (TORCHELASTIC_USE_AGENT_STORE=True)
    there is nothing to host: every rank is a client of the agent's.
    """
    env = os.environ if env is None else env
    store = None
    if (
        env.get("RANK") == "0"
        and env.get("TORCHELASTIC_USE_AGENT_STORE") != "True"
        and env.get("MASTER_ADDR")
        and env.get("MASTER_PORT")
    ):
        store = host_store(env["MASTER_ADDR"], int(env["MASTER_PORT"]))
    sys.argv = [module, *args]  # runpy puts the module's file in argv[0], as -m does
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        del store  # held open until the program has ended


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["torchrun"]:
            run_torchrun(argv[1:])
        elif argv[:1] == ["rank"] and len(argv) >= 2:
            run_rank(argv[1], argv[2:])
        else:
            print(USAGE, file=sys.stderr)
            return 2
    except StoreError as exc:
        print(f"jobstore: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
