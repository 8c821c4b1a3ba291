"""What a real job listens on: every port on a node's configured address, never on every
interface, and the rendezvous and ranks' store ports closed once the job has ended.

The master is put on 127.0.0.2 where this machine has it (Linux routes all of 127/8 to
lo), so a store bound to "loopback" by accident rather than to the master's configured
address shows up as a failure.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from minicluster.core.config import parse_config
from tests.launcher.conftest import cli, loopback_config, write_config
from tests.support import deadline

pytestmark = pytest.mark.integration

WILDCARDS = {"0.0.0.0", "::"}


def _master_address() -> str:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.2", 0))
        except OSError:
            return "127.0.0.1"  # macOS configures 127.0.0.1 alone on lo0
    return "127.0.0.2"


def _tree(root: int) -> list[psutil.Process]:
    try:
        process = psutil.Process(root)
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return []


def _listeners(port: int | None = None) -> list:
    return [
        c
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and (port is None or c.laddr.port == port)
    ]


class JobWatch:
    """Samples the listeners of a job's processes (by PID) while it runs."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.commands: dict[int, str] = {}
        self.environ: dict[int, dict[str, str]] = {}
        self.listens: dict[int, set[tuple[str, int]]] = {}

    def sample(self) -> None:
        for process in _tree(self.root):
            try:
                if process.pid not in self.commands:
                    self.commands[process.pid] = " ".join(process.cmdline())
                if self.is_rank(process.pid):
                    self.environ.setdefault(process.pid, process.environ())
            except psutil.Error:
                continue
        for conn in _listeners():
            if conn.pid in self.commands:
                self.listens.setdefault(conn.pid, set()).add((conn.laddr.ip, conn.laddr.port))

    def is_rank(self, pid: int) -> bool:
        """A rank's program (its torchrun's command line names the rank wrapper too)."""
        command = self.commands[pid]
        return "jobstore rank" in command and "torch.distributed.run" not in command

    def pids(self, marker: str) -> list[int]:
        return [pid for pid, command in self.commands.items() if marker in command]

    def everything(self) -> set[tuple[str, int]]:
        return set().union(*self.listens.values()) if self.listens else set()


def test_every_job_port_is_on_a_configured_address_and_closes_with_the_job(tmp_path: Path):
    master = _master_address()
    data = loopback_config(tmp_path / "state").model_dump(mode="json")
    assert data["nodes"][0]["role"] == "master"
    data["nodes"][0]["address"] = master
    config = parse_config(data, "<test>")
    config_file = write_config(config, tmp_path / "config.yaml")
    red, yellow = config.nodes
    rendezvous = config.trainer.rendezvous_port

    launcher = subprocess.Popen(
        cli("run-job", "--config", str(config_file), "--steps", "30", "--step-sleep", "0.3"),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    watch = JobWatch(launcher.pid)
    ends = time.monotonic() + deadline(240)
    try:
        while launcher.poll() is None and time.monotonic() < ends:
            watch.sample()
            time.sleep(0.2)
        output, _ = launcher.communicate(timeout=deadline(60))
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 0, output[-3000:]

    # Nothing the job started listened on every interface, at any sample.
    everything = watch.everything()
    assert everything, "no listener of the job was ever seen"
    assert {ip for ip, _ in everything} <= {red.address, yellow.address}
    assert not {ip for ip, _ in everything} & WILDCARDS

    # The rendezvous store: on the master's address only, in the master's store host.
    (host,) = watch.pids("jobstore rendezvous")
    on_rendezvous = {(ip, port) for ip, port in everything if port == rendezvous}
    assert on_rendezvous == {(master, rendezvous)}
    assert (master, rendezvous) in watch.listens[host]
    # No torchrun other than that host listens at all (the agents host no ranks' store).
    for pid in watch.pids("torch.distributed.run"):
        assert watch.listens.get(pid, set()) <= {(master, rendezvous)}

    # The ranks' store: in global rank 0, on MASTER_ADDR (its node's address) only.
    (rank0,) = [pid for pid, env in watch.environ.items() if env.get("RANK") == "0"]
    store = (watch.environ[rank0]["MASTER_ADDR"], int(watch.environ[rank0]["MASTER_PORT"]))
    assert store[0] in {red.address, yellow.address}
    assert store in watch.listens[rank0]
    assert {(ip, port) for ip, port in everything if port == store[1]} == {store}

    # Each rank's metrics endpoint, on its node's address.
    for node in config.nodes:
        assert (node.address, config.metrics_base_port(node)) in everything

    # Closed with the job: nothing listens on either store's port any more.
    assert _listeners(rendezvous) == []
    assert _listeners(store[1]) == []
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.settimeout(5)
        probe.connect((master, rendezvous))


def test_a_restarted_group_hosts_a_fresh_ranks_store_on_a_configured_address(tmp_path: Path):
    config = loopback_config(tmp_path / "state")
    config_file = write_config(config, tmp_path / "config.yaml")
    addresses = {node.address for node in config.nodes}
    launcher = subprocess.Popen(
        cli("run-job", "--config", str(config_file), "--steps", "40", "--step-sleep", "0.3",
            "--no-metrics", "--max-restarts", "1"),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    watch = JobWatch(launcher.pid)
    killed = None
    ends = time.monotonic() + deadline(300)
    try:
        while launcher.poll() is None and time.monotonic() < ends:
            watch.sample()
            ranks = {pid: env for pid, env in watch.environ.items() if psutil.pid_exists(pid)}
            if killed is None and len(ranks) == 2 and watch.listens.get(_rank0(ranks)):
                # The rank on mini-yellow dies; its torchrun restarts the group once.
                (yellow,) = [p for p in ranks if "mini-yellow" in watch.commands[p]]
                psutil.Process(yellow).kill()
                killed = yellow
            time.sleep(0.2)
        output, _ = launcher.communicate(timeout=deadline(60))
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert killed is not None, output[-3000:]
    assert launcher.returncode == 0, output[-3000:]
    (record,) = (tmp_path / "runs").glob("*.json")
    assert json.loads(record.read_text())["summary"]["restarts"] == 1

    # Each attempt's rank 0 hosted its own store, on its node's address only.
    stores = {
        (env["MASTER_ADDR"], int(env["MASTER_PORT"]))
        for env in watch.environ.values()
        if env.get("RANK") == "0"
    }
    assert len(stores) == 2
    everything = watch.everything()
    for address, port in stores:
        assert address in addresses
        assert {(ip, p) for ip, p in everything if p == port} == {(address, port)}
        assert _listeners(port) == []
    assert {ip for ip, _ in everything} <= addresses


def _rank0(ranks: dict[int, dict[str, str]]) -> int | None:
    return next((pid for pid, env in ranks.items() if env.get("RANK") == "0"), None)
