"""How the bench starts its programs on the nodes: torchrun per node, ranks pinned."""

from __future__ import annotations

import os

from minicluster.bench import cluster, nodes, pin
from minicluster.bench.jobs import BenchSettings
from minicluster.core.config import parse_config
from minicluster.core.profiles import local_profile


def two_minis():
    data = local_profile().model_dump(mode="json")
    for node, address in zip(data["nodes"], ("10.0.0.2", "10.0.0.3"), strict=True):
        node.update(address=address, interface="en0", python="/usr/bin/python3")
        node.pop("metrics_base_port", None)
    return parse_config(data, "config.yaml")


def test_each_node_runs_the_module_under_torchrun_pinned_with_its_interface():
    config = two_minis()
    commands = nodes.bench_commands(config, ["minicluster.bench.sweep", "--iters", "3"], "j1")
    assert [c.node.name for c in commands] == ["mini-red", "mini-yellow"]
    for command in commands:
        argv = command.argv
        assert argv[0] == command.node.venv_python  # remote: the node's venv, not ours
        assert "--nnodes=2" in argv and f"--local-addr={command.node.address}" in argv
        assert "--rdzv-endpoint=10.0.0.2:29400" in argv
        tail = argv[argv.index("--") + 1 :]
        # Each rank starts through jobstore, which hosts the ranks' store on the node's
        # address (torchrun's own would listen on every interface).
        assert tail == ["minicluster.launcher.jobstore", "rank", "-m",
                        "minicluster.bench.pin", "--cpu-offset", "0",
                        "minicluster.bench.sweep", "--iters", "3"]  # fmt: skip
        assert command.env["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] == "1"
        assert command.env["GLOO_SOCKET_IFNAME"] == "en0"
        assert command.env["OMP_NUM_THREADS"] == "1"


def test_loopback_nodes_get_separate_cores():
    commands = nodes.bench_commands(local_profile(), ["m"], "j1")
    offsets = [c.argv[c.argv.index("--cpu-offset") + 1] for c in commands]
    assert offsets == ["0", "1"]


def test_world_size_1_is_the_master_alone_and_each_node_gets_its_own_trainer_args():
    config = two_minis()
    alone = cluster.first_nodes(config, 1)
    assert [n.name for n in alone.nodes] == ["mini-red"] and alone.world_size == 1
    program = cluster.trainer_program(config, BenchSettings(steps=7), "b1")
    red, yellow = (program(n) for n in config.nodes)
    assert red[0] == "minicluster.trainer" and red[red.index("--steps") + 1] == "7"
    assert red[red.index("--metrics-base-port") + 1] == str(9400 + cluster.PORT_OFFSET)
    assert red[red.index("--node") + 1] == "mini-red"
    assert yellow[yellow.index("--node") + 1] == "mini-yellow"
    assert red[red.index("--checkpoint-interval") + 1] == "0"


def test_pin_takes_the_core_of_its_local_rank_plus_offset(monkeypatch):
    chosen = []
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(
        os, "sched_setaffinity", lambda pid, cpus: chosen.append(cpus), raising=False
    )
    assert pin.pin(local_rank=1, offset=0) == 1
    assert pin.pin(local_rank=0, offset=2) == 2
    assert pin.pin(local_rank=3, offset=2) == 1  # wraps around the allowed cores
    assert chosen == [{1}, {2}, {1}]


def test_pin_without_an_affinity_api_runs_unpinned(monkeypatch):
    monkeypatch.delattr(os, "sched_setaffinity", raising=False)
    assert pin.pin(local_rank=0) is None
