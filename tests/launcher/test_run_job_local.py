"""`minicluster run-job` for real on this machine: two loopback "nodes", each its own
torchrun, meeting through the c10d rendezvous exactly as two Minis do (no ssh)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from minicluster.core.logformat import parse_line
from tests.launcher.conftest import cli, processes_naming, run_cli
from tests.support import as_foreground_job, free_port, job_failure, wait_until

pytestmark = pytest.mark.integration

STEPS = 6


def _merged_lines(log: Path) -> list[str]:
    return log.read_text().splitlines()


def _assert_merged_log(log: Path, world_size: int, steps: int) -> None:
    lines = _merged_lines(log)
    times = [line.split(" ", 1)[0] for line in lines]
    assert times == sorted(times), "merged log is not in time order"
    parsed = [p for p in map(parse_line, lines) if p]
    assert {p.rank for p in parsed} == set(range(world_size))
    nodes = {p.rank: p.node for p in parsed}
    assert set(nodes.values()) == {"mini-red", "mini-yellow"}
    last_step = {}
    for p in parsed:
        if p.message.startswith("step "):
            last_step[p.rank] = int(p.fields()["step"])
    assert last_step == {rank: steps for rank in range(world_size)}


def _record(tmp_path: Path) -> dict:
    (record_path,) = (tmp_path / "runs").glob("*.json")
    return json.loads(record_path.read_text())


def test_local_job_runs_to_completion_without_any_ssh(tmp_path):
    """--local on a machine with no ssh client on PATH (so no ssh server is used either)."""
    no_ssh = tmp_path / "bin"
    no_ssh.mkdir()
    env = {**os.environ, "PATH": str(no_ssh), "XDG_STATE_HOME": str(tmp_path / "state")}
    result = run_cli(
        "run-job", "--local", "--steps", str(STEPS), "--batch-size", "8",
        "--rendezvous-port", str(free_port()), "--no-metrics", "--linger", "0",
        "--log-interval", "2",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode == 0, job_failure(result)
    record = _record(tmp_path)
    job_id = record["job_id"]
    assert record["status"] == "succeeded" and record["exit_code"] == 0
    summary = record["summary"]
    assert summary["steps"] == STEPS and summary["ranks_reported"] == 2
    assert summary["samples"] == 2 * STEPS * 8
    assert summary["samples_per_second"] > 0 and summary["step_seconds"] > 0
    assert summary["allreduce_bytes"] is None  # --no-metrics: no counting comm hook
    _assert_merged_log(tmp_path / "logs" / f"{job_id}.log", world_size=2, steps=STEPS)
    # Each rank's own file, fetched from its node's log dir into logs/<job_id>/.
    rank_files = sorted(p.name for p in (tmp_path / "logs" / job_id).iterdir())
    assert rank_files == ["rank0.log", "rank1.log"]
    assert "rank=1" in (tmp_path / "logs" / job_id / "rank1.log").read_text()
    assert f"job {job_id}: succeeded" in result.stdout
    # The local profile was written for the trainers to read, in the state dir.
    assert (tmp_path / "state" / "minicluster" / "local-config.yaml").is_file()


def test_two_ranks_per_node_with_metrics_count_every_all_reduce(tmp_path, cluster):
    _, config_file = cluster
    result = run_cli(
        "run-job", "--config", str(config_file), "--steps", str(STEPS),
        "--nproc-per-node", "2", "--logs-dir", "out/logs", "--runs-dir", "out/runs",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, job_failure(result)
    record = _record(tmp_path / "out")
    summary = record["summary"]
    assert summary["world_size"] == 4 and summary["ranks_reported"] == 4
    assert summary["steps"] == STEPS
    # Every step all-reduces exactly the gradient bytes, on every rank.
    grad_bytes = record["ranks"][0]["grad_bytes"]
    assert [r["allreduce_bytes"] for r in record["ranks"]] == [STEPS * grad_bytes] * 4
    assert summary["allreduce_busbw_bytes_per_second"] > 0
    assert 0 < summary["comm_fraction"] < 1
    log = tmp_path / "out" / "logs" / f"{record['job_id']}.log"
    _assert_merged_log(log, world_size=4, steps=STEPS)
    ranks_by_node = {}
    for p in filter(None, map(parse_line, _merged_lines(log))):
        ranks_by_node.setdefault(p.node, set()).add(p.rank)
    assert sorted(map(len, ranks_by_node.values())) == [2, 2]


def _start(tmp_path: Path, config: Path, *extra: str) -> subprocess.Popen:
    # A session of its own, like a terminal's foreground job: Ctrl-C goes to the group.
    return subprocess.Popen(
        cli("run-job", "--config", str(config), *extra),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=as_foreground_job,
    )


def _trainers(launcher: subprocess.Popen) -> list[psutil.Process]:
    try:
        tree = psutil.Process(launcher.pid).children(recursive=True)
    except psutil.Error:
        return []
    # A rank runs `-m minicluster.trainer`; its torchrun's command line names that too.
    commands = [(p, " ".join(p.cmdline())) for p in tree]
    return [
        p for p, c in commands if "-m minicluster.trainer" in c and "torch.distributed.run" not in c
    ]


def _rank_log_has_steps(config_dir: Path) -> bool:
    return any("step step=" in p.read_text() for p in config_dir.rglob("rank*.log"))


def test_ctrl_c_stops_every_process_the_job_started(tmp_path, cluster):
    _, config_file = cluster
    launcher = _start(
        tmp_path, config_file, "--steps", "100000", "--step-sleep", "0.05", "--no-metrics"
    )
    try:
        wait_until(lambda: len(_trainers(launcher)) == 2, "both ranks to start", timeout=90)
        wait_until(lambda: _rank_log_has_steps(tmp_path / "state"), "a step", timeout=90)
        started = psutil.Process(launcher.pid).children(recursive=True)
        assert len(started) == 4  # two torchruns, one rank each
        sent = time.monotonic()
        os.killpg(launcher.pid, signal.SIGINT)  # what Ctrl-C on the terminal does
        output, _ = launcher.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    assert launcher.returncode == 130, output[-3000:]
    assert took < 15, f"stopping took {took:.1f}s"
    left = [p.pid for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"processes left behind: {left}"
    record = _record(tmp_path)
    assert record["status"] == "interrupted" and record["exit_code"] == 130
    assert processes_naming(record["job_id"]) == []
    assert "interrupted: stopping the job on every node" in output
    # What ran before the Ctrl-C is kept: merged and per rank.
    merged = (tmp_path / "logs" / f"{record['job_id']}.log").read_text()
    assert "step step=" in merged and "rank=1" in merged


def test_a_failed_rank_fails_the_job_with_its_status_and_stops_the_other_node(tmp_path, cluster):
    _, config_file = cluster
    launcher = _start(
        tmp_path,
        config_file,
        "--steps",
        "100000",
        "--step-sleep",
        "0.05",
        "--no-metrics",
        "--max-restarts",
        "0",
    )
    try:
        wait_until(lambda: len(_trainers(launcher)) == 2, "both ranks to start", timeout=90)
        wait_until(lambda: _rank_log_has_steps(tmp_path / "state"), "a step", timeout=90)
        started = psutil.Process(launcher.pid).children(recursive=True)
        (yellow,) = [p for p in _trainers(launcher) if "mini-yellow" in p.cmdline()]
        yellow.kill()  # a rank dies; with no restarts left its torchrun gives up
        output, _ = launcher.communicate(timeout=90)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    assert launcher.returncode == 1, output[-3000:]
    record = _record(tmp_path)
    assert record["status"] == "failed (mini-yellow exited with status 1)"
    assert record["exit_code"] == 1
    assert record["failure"]["node"] == "mini-yellow" and record["failure"]["exit_code"] == 1
    assert "mini-yellow: torchrun exited with status 1" in output
    left = [p.pid for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"processes left behind: {left}"
