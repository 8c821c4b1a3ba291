"""The per-node torchrun command lines built from a Config and the overrides."""

from __future__ import annotations

import shlex

import pytest

from minicluster.core.config import ConfigError, load_config
from minicluster.core.layout import config_path as installed_config_path
from minicluster.launcher.plan import JobOptions, new_job_id, plan_job, with_overrides
from minicluster.launcher.remote import PID_MARK, remote_shell_command
from tests.launcher.conftest import loopback_config
from tests.support import EXAMPLE_CONFIG

REPO_CONFIG = EXAMPLE_CONFIG


def _flag(argv: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in argv if a.startswith(name + "=")]
    assert len(values) == 1, f"{name} appears {len(values)} times in {argv}"
    return values[0]


def test_every_node_runs_torchrun_with_its_venv_python_and_the_masters_rendezvous():
    config = load_config(REPO_CONFIG)
    paths = {n.name: installed_config_path(n) for n in config.nodes}
    plan = plan_job(config, JobOptions(), paths, job_id="job-1")
    assert [c.node.name for c in plan.commands] == ["mini-red", "mini-yellow"]
    python = "/opt/minicluster/venv/bin/python"
    # The master's torchrun runs inside the store host, which listens on the master's address.
    master, worker = plan.commands
    jobstore = ["-m", "minicluster.launcher.jobstore"]
    assert master.argv[:6] == [python, *jobstore, "rendezvous", "-m", "torch.distributed.run"]
    assert worker.argv[:3] == [python, "-m", "torch.distributed.run"]
    for command in plan.commands:
        argv, node = command.argv, command.node
        assert _flag(argv, "--nnodes") == "2"
        assert _flag(argv, "--nproc-per-node") == "1"
        assert _flag(argv, "--max-restarts") == "3"
        assert _flag(argv, "--rdzv-backend") == "c10d"
        assert _flag(argv, "--rdzv-endpoint") == "192.0.2.10:29400"
        assert _flag(argv, "--rdzv-id") == "job-1"
        assert _flag(argv, "--local-addr") == node.address
        # No torchrun hosts the rendezvous store, not even the master's.
        assert _flag(argv, "--rdzv-conf") == "is_host=0,join_timeout=120"
        # "--" keeps torchrun from reading the trainer's --node as its own --node-rank.
        trainer = argv[argv.index("--") + 1 :]
        assert argv[argv.index("--") - 1] == "-m"
        # Each rank runs the trainer inside the wrapper that lets rank 0 host the ranks' store.
        assert trainer == [
            "minicluster.launcher.jobstore",
            "rank",
            "-m",
            "minicluster.trainer",
            "--config",
            "/opt/minicluster/config.yaml",
            "--node",
            node.name,
            "--job-id",
            "job-1",
        ]
        assert command.env == {
            "GLOO_SOCKET_IFNAME": "en0",
            "PYTHONUNBUFFERED": "1",
            "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1",
        }
        assert not command.runs_here
    assert plan.world_size == 2 and plan.target_steps == 200


def test_command_line_overrides_reach_torchrun_and_the_trainer(tmp_path):
    options = JobOptions(
        steps=7,
        batch_size=4,
        model="transformer",
        pg_timeout_seconds=9,
        linger_seconds=0.5,
        no_metrics=True,
        step_sleep=0.25,
        nproc_per_node=2,
        max_restarts=0,
        rendezvous_port=29555,
    )
    config = with_overrides(loopback_config(tmp_path), options, "<test>")
    plan = plan_job(
        config, options, {n.name: "/cfg.yaml" for n in config.nodes}, "j", "/usr/bin/python3"
    )
    argv = plan.commands[0].argv
    assert argv[0] == "/usr/bin/python3"  # loopback nodes run the launcher's interpreter
    assert plan.commands[0].runs_here
    assert _flag(argv, "--nproc-per-node") == "2"
    assert _flag(argv, "--max-restarts") == "0"
    assert _flag(argv, "--rdzv-endpoint") == "127.0.0.1:29555"
    trainer = argv[argv.index("--") + 1 :]
    expected = "--steps 7 --batch-size 4 --model transformer --pg-timeout-seconds 9 "
    expected += "--linger 0.5 --step-sleep 0.25 --no-metrics"
    assert " ".join(trainer).endswith(expected)
    assert plan.world_size == 4 and plan.target_steps == 7


def test_an_override_is_checked_like_the_config_file(tmp_path):
    config = loopback_config(tmp_path)
    clash = config.nodes[0].exporter_port
    with pytest.raises(ConfigError, match=rf"{clash} is already used by the rendezvous"):
        with_overrides(config, JobOptions(rendezvous_port=clash), "<test>")
    with pytest.raises(ConfigError, match=r"trainer.pg_timeout_seconds"):
        with_overrides(config, JobOptions(pg_timeout_seconds=1), "<test>")


def test_remote_shell_prints_its_pid_then_execs_torchrun_with_the_environment():
    config = load_config(REPO_CONFIG)
    plan = plan_job(config, JobOptions(), {n.name: "/c.yaml" for n in config.nodes}, "j")
    text = remote_shell_command(plan.commands[1])
    prefix = f"echo {PID_MARK}$$; exec "
    assert text.startswith(prefix)
    words = shlex.split(text.removeprefix(prefix))
    assert words[:4] == [
        "/usr/bin/env",
        "GLOO_SOCKET_IFNAME=en0",
        "PYTHONUNBUFFERED=1",
        "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1",
    ]
    assert words[4:] == plan.commands[1].argv


def test_job_ids_sort_by_start_time_and_are_unique():
    early, late = new_job_id(1_700_000_000), new_job_id(1_700_000_001)
    assert early < late
    assert early.startswith("20231114-221320-")
    assert len({new_job_id(1_700_000_000) for _ in range(50)}) == 50
