"""Defaults, config file and flags: what a rank ends up running with."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

from minicluster.core.config import ConfigError
from minicluster.trainer.distributed import backend_for, gloo_interface, pick_device, rank_env
from minicluster.trainer.settings import build_parser, resolve
from minicluster.trainer.trainer import use_staged_path
from tests.trainer.conftest import write_config


def settings(*argv: str, env: dict | None = None):
    return resolve(build_parser().parse_args(list(argv)), env=env or {})


@pytest.fixture(autouse=True)
def state_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "minicluster"


def test_without_config_built_in_defaults_on_this_host(state_home):
    run = settings(env={"TORCHELASTIC_RUN_ID": "rdzv-42"})
    assert run.trainer.steps == 200 and run.trainer.model == "mlp"
    assert run.node == socket.gethostname().split(".")[0].lower()
    assert run.job_id == "rdzv-42"
    assert (run.metrics_address, run.metrics_base_port) == ("127.0.0.1", 9400)
    assert run.run_dir == state_home / "run"
    assert run.checkpoint_dir == state_home / "checkpoints"
    assert run.job_log_dir == state_home / "logs" / "rdzv-42"
    assert run.interface is None and run.metrics_enabled and run.grad_sync == "auto"


def test_flags_override_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = settings(
        "--steps=30", "--batch-size=4", "--model=transformer", "--metrics-base-port=9500",
        "--metrics-address=10.0.0.5", "--checkpoint-dir=ck", "--log-dir=/var/tmp/l",
        "--checkpoint-interval=7", "--log-interval=3", "--device=cpu",
        "--pg-timeout-seconds=15", "--linger=2.5", "--run-dir=rd", "--seed=9",
        "--no-metrics", "--job-id=j.1", "--node=somewhere", "--step-sleep=0.5",
        "--grad-sync=staged",
    )  # fmt: skip
    t = run.trainer
    assert (t.steps, t.batch_size, t.model, t.metrics_base_port) == (30, 4, "transformer", 9500)
    assert (t.checkpoint_interval, t.log_interval, t.device) == (7, 3, "cpu")
    assert (t.pg_timeout_seconds, t.linger_seconds, t.seed) == (15, 2.5, 9)
    assert (run.metrics_base_port, run.metrics_address) == (9500, "10.0.0.5")
    assert run.checkpoint_dir == tmp_path / "ck"  # relative flags are relative to the cwd
    assert run.job_checkpoint_dir == tmp_path / "ck" / "j.1"
    assert run.log_dir == Path("/var/tmp/l") and run.run_dir == tmp_path / "rd"
    assert (run.node, run.job_id, run.metrics_enabled) == ("somewhere", "j.1", False)
    assert (run.step_sleep_seconds, run.grad_sync) == (0.5, "staged")


def test_fresh_job_id_when_neither_flag_nor_torchrun_names_one():
    first, second = settings().job_id, settings().job_id
    assert first.startswith("job-") and first != second


def test_config_supplies_the_trainer_section_and_this_nodes_settings(tmp_path):
    config = write_config(tmp_path, steps=77, model="transformer", checkpoint_dir="ck")
    red = settings("--config", str(config), "--node", "mini-red", "--job-id=j")
    install = tmp_path / "state" / "mini-red"
    assert (red.trainer.steps, red.trainer.model) == (77, "transformer")
    assert (red.node, red.metrics_address, red.metrics_base_port) == ("mini-red", "127.0.0.1", 9400)
    assert red.interface == "lo"
    assert red.run_dir == install / "run"
    assert red.checkpoint_dir == install / "ck"
    assert red.log_dir == install / "logs"
    # mini-yellow shares the host, so the local profile moves its rank ports.
    yellow = settings("--config", str(config), "--node", "mini-yellow")
    assert yellow.metrics_base_port == 9410
    # ... and a flag still wins over both.
    flagged = settings("--config", str(config), "--node", "mini-yellow", "--metrics-base-port=9600")
    assert flagged.metrics_base_port == 9600
    overridden = settings("--config", str(config), "--node", "mini-red", "--steps=5")
    assert overridden.trainer.steps == 5 and overridden.trainer.model == "transformer"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps=0"], "command line: --steps: Input should be greater than or equal to 1"),
        (["--linger=-1"], "command line: --linger: Input should be greater than or equal to 0"),
        (["--pg-timeout-seconds=1"], "command line: --pg-timeout-seconds: Input should be"),
        (["--job-id=a/b"], "command line: --job-id: 'a/b': use letters"),
        (["--step-sleep=-1"], "command line: --step-sleep: must be >= 0"),
    ],
)
def test_bad_flags_name_the_flag(argv, message):
    with pytest.raises(ConfigError) as caught:
        settings(*argv)
    assert str(caught.value).startswith(message)


def test_unknown_node_names_the_choices(tmp_path):
    config = write_config(tmp_path)
    with pytest.raises(ConfigError, match=r"--node: no node named 'mini-blue' \(config has"):
        settings("--config", str(config), "--node", "mini-blue")
    with pytest.raises(ConfigError, match=r"nodes: no node named .*pass --node NAME"):
        settings("--config", str(config))  # this host is neither mini-red nor mini-yellow


def test_gloo_interface_is_pinned_only_when_this_host_has_it():
    assert gloo_interface("en0", available=["lo0", "en0"], env={}) == "en0"
    assert gloo_interface("bridge0", available=["lo0", "en0"], env={}) is None
    assert gloo_interface(None, available=["en0"], env={}) is None
    # An explicit GLOO_SOCKET_IFNAME (the launcher's, or the user's) is left alone.
    assert gloo_interface("en0", available=["en0"], env={"GLOO_SOCKET_IFNAME": "en1"}) is None
    assert gloo_interface("lo", env={}) == "lo"  # this Linux host's loopback, via psutil


def test_device_and_backend_choice():
    assert pick_device("auto", local_rank=1) == torch.device("cpu")  # a CPU-only build here
    assert pick_device("cpu", local_rank=0) == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"trainer\.device: cuda was asked for"):
        pick_device("cuda", local_rank=0)
    assert backend_for(torch.device("cpu")) == "gloo"
    assert backend_for(torch.device("mps")) == "gloo"  # gloo, and gradients staged via CPU
    assert backend_for(torch.device("cuda", 0)) == (
        "nccl" if torch.distributed.is_nccl_available() else "gloo"
    )


def test_staged_path_is_what_mps_gets():
    mps, cpu = torch.device("mps"), torch.device("cpu")
    assert use_staged_path("auto", mps) and use_staged_path("staged", cpu)
    assert not use_staged_path("auto", cpu) and not use_staged_path("ddp", cpu)
    with pytest.raises(ConfigError, match="gloo cannot all-reduce MPS tensors"):
        use_staged_path("ddp", mps)


def test_rank_env_reads_torchruns_variables():
    env = rank_env(
        {
            "RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4",
            "TORCHELASTIC_RESTART_COUNT": "2",
        }
    )  # fmt: skip
    assert (env.rank, env.local_rank, env.world_size, env.restart_count) == (3, 1, 4, 2)
    assert env.under_torchrun
    alone = rank_env({})
    assert (alone.rank, alone.world_size, alone.restart_count, alone.under_torchrun) == (
        0, 1, 0, False,
    )  # fmt: skip
