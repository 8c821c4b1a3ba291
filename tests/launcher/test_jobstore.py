"""The job's stores listen on one address only, and a rank's own process group shares the
store rank 0 hosts instead of opening a listener on every interface."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta

import psutil
import pytest
import torch.distributed as dist

from minicluster.launcher import jobstore
from minicluster.launcher.jobstore import StoreError, host_store, listen_on, main
from tests.support import free_port


def _listening(port: int) -> set[str]:
    """The addresses anything on this machine listens on at `port`."""
    return {
        c.laddr.ip
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }


def test_a_hosted_store_listens_on_its_address_only_and_closes_when_dropped():
    store = host_store("127.0.0.1", 0, timeout=timedelta(seconds=10))
    port = store.port
    assert _listening(port) == {"127.0.0.1"}
    client = dist.TCPStore("127.0.0.1", port, is_master=False, timeout=timedelta(seconds=10))
    client.set("rendezvous", "state")
    assert store.get("rendezvous") == b"state"
    # What init_process_group (env://) asks for on rank 0: the same server, no new listener.
    tenant = dist.TCPStore(
        "127.0.0.1", port, world_size=1, is_master=True, multi_tenant=True,
        timeout=timedelta(seconds=10),
    )  # fmt: skip
    assert tenant.get("rendezvous") == b"state"
    assert _listening(port) == {"127.0.0.1"}
    del store, client, tenant
    assert _listening(port) == set()


def test_a_taken_port_is_one_line_naming_address_and_port():
    with listen_on("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(StoreError, match=rf"^cannot listen on 127.0.0.1 port {port}: "):
            listen_on("127.0.0.1", port)


def test_without_a_mode_it_prints_its_usage(capsys):
    for argv in ([], ["rank", "probe"], ["serve", "-m", "probe"], ["rank", "-m"]):
        assert main(argv) == 2
        usage = "usage: python -m minicluster.launcher.jobstore {rendezvous|rank} -m MODULE"
        assert capsys.readouterr().err == usage + " [ARGS...]\n"


def test_the_rendezvous_store_goes_where_torchruns_endpoint_says(capsys):
    torchrun = ["--nnodes=2", "--rdzv-endpoint=[::1]:29555", "-m", "--", "prog"]
    assert jobstore.rendezvous_address(torchrun) == ("::1", 29555)
    # The program's own arguments after "--" are not torchrun's.
    torchrun = ["--rdzv_endpoint", "10.0.0.5", "-m", "--", "prog", "--rdzv-endpoint=h:1"]
    assert jobstore.rendezvous_address(torchrun) == ("10.0.0.5", 29400)
    assert main(["rendezvous", "-m", "torch.distributed.run", "--nnodes=1"]) == 1
    assert capsys.readouterr().err == "jobstore: torchrun is given no --rdzv-endpoint to host\n"


# A rank's program as torchrun runs it: it reports its argv, its __name__ and, once its
# process group is up, the addresses its process listens on at MASTER_PORT.
PROBE = """
import json, os, sys
import psutil
import torch.distributed as dist

dist.init_process_group("gloo")
port = int(os.environ["MASTER_PORT"])
me = psutil.Process().pid
ips = sorted(
    c.laddr.ip for c in psutil.net_connections(kind="tcp")
    if c.pid == me and c.status == psutil.CONN_LISTEN and c.laddr.port == port
)
wild = sorted(
    c.laddr.ip for c in psutil.net_connections(kind="tcp")
    if c.pid == me and c.status == psutil.CONN_LISTEN and c.laddr.ip in ("0.0.0.0", "::")
)
dist.destroy_process_group()
print(json.dumps({"argv": sys.argv[1:], "name": __name__, "ips": ips, "wild": wild}))
"""


def test_rank_zero_hosts_the_ranks_store_on_master_addr_and_its_group_shares_it(tmp_path):
    (tmp_path / "probe_rank.py").write_text(textwrap.dedent(PROBE))
    port = free_port()
    env = {
        **os.environ,
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "TORCHELASTIC_USE_AGENT_STORE": "False",
        "GLOO_SOCKET_IFNAME": "lo0" if sys.platform == "darwin" else "lo",
    }
    rank = [sys.executable, "-m", "minicluster.launcher.jobstore", "rank"]
    result = subprocess.run(
        [*rank, "-m", "probe_rank", "a", "--b"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["argv"] == ["a", "--b"] and report["name"] == "__main__"
    # One listener at MASTER_PORT, on MASTER_ADDR: the group's store is the hosted one.
    assert report["ips"] == ["127.0.0.1"]
    assert report["wild"] == []
    assert _listening(port) == set()


@pytest.mark.parametrize(
    ("rank", "agent_store", "hosts"),
    [("0", "False", True), ("1", "False", False), ("0", "True", False)],
)
def test_only_rank_zero_hosts_and_only_when_torchrun_shares_no_store(
    monkeypatch, rank, agent_store, hosts
):
    monkeypatch.setattr(jobstore, "host_store", lambda *where: where)
    env = {
        "RANK": rank,
        "MASTER_ADDR": "10.0.0.5",
        "MASTER_PORT": "4242",
        "TORCHELASTIC_USE_AGENT_STORE": agent_store,
    }
    assert jobstore.host_ranks_store(env) == (("10.0.0.5", 4242) if hosts else None)
