"""Bench programs on two simulated hosts (network namespaces on the test bridge).

Only the network is the host's own here: the namespaces share this machine's files, so
the control venv's interpreter runs in both, and torchrun joins them with a static
rendezvous at the first host's address, gloo bound to en0 (the link being measured).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator

from minicluster.bench import tcp
from tests.hosts.network import HOST_INTERFACE, Lan, create_lan

HOSTS = ("mini-red", "mini-yellow")
MASTER_PORT = 29555


@contextlib.contextmanager
def lan_pair() -> Iterator[Lan]:
    lan = create_lan(secrets.token_hex(2))
    try:
        for name in HOSTS:
            lan.add_host(name)
        yield lan
    finally:
        lan.delete()


def _in(lan: Lan, host: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", lan.namespaces[host], *argv]


def tcp_probe(lan: Lan, seconds: float = 3.0) -> tcp.TcpResult:
    """One stream from the first host to the second's en0 address."""
    sender, receiver = HOSTS
    python = [sys.executable, "-m", "minicluster.bench.tcp"]
    server = subprocess.Popen(
        _in(lan, receiver, [*python, "serve", lan.addresses[receiver]]),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = server.stdout.readline()
        assert first.startswith(tcp.LISTENING), first
        port = first.removeprefix(tcp.LISTENING).strip()
        argv = [*python, "send", lan.addresses[receiver], port, "--seconds", str(seconds)]
        subprocess.run(_in(lan, sender, argv), check=True, timeout=seconds + 60)
        rest, _ = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    result = tcp.parse_result(rest.splitlines())
    assert result is not None, rest
    return result


def torchrun_pair(
    lan: Lan, program: list[str], timeout: float = 600, env: dict | None = None
) -> dict[str, str]:
    """`program` (module and arguments, after `-m`) on one rank per host, pinned to
    separate cores; host -> its output. Both must exit 0."""
    master = lan.addresses[HOSTS[0]]
    base = {
        **os.environ,
        "GLOO_SOCKET_IFNAME": HOST_INTERFACE,
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    procs = {}
    for rank, host in enumerate(HOSTS):
        argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2",
                "--nproc-per-node=1", f"--node-rank={rank}", f"--master-addr={master}",
                f"--master-port={MASTER_PORT}", f"--local-addr={lan.addresses[host]}",
                "-m", "minicluster.bench.pin", "--cpu-offset", str(rank), *program]  # fmt: skip
        procs[host] = subprocess.Popen(
            _in(lan, host, argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=base,
        )  # fmt: skip
    outputs = {}
    try:
        for host, proc in procs.items():
            outputs[host], _ = proc.communicate(timeout=timeout)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for host, proc in procs.items():
        assert proc.returncode == 0, f"{host}: exit {proc.returncode}\n{outputs[host][-3000:]}"
    return outputs
