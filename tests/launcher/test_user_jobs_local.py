"""`run-job -- python ...` for real on this machine: two loopback "nodes", each with its own
copy of the project and job environment, one torchrun each (no ssh)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from minicluster.core.logformat import parse_line
from tests.launcher.conftest import (
    cli,
    loopback_config,
    processes_naming,
    run_cli,
    write_config,
)
from tests.launcher.test_user_jobs_two_hosts import BOOM, GRAD_BYTES, SLEEPER
from tests.support import job_failure, wait_until

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _records(runs: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))]


def _run(cluster, tmp_path: Path, workdir: Path, *command: str, flags=("--no-metrics",)):
    _config, path = cluster
    return run_cli(
        "run-job", "--config", str(path), "--logs-dir", str(tmp_path / "logs"),
        "--runs-dir", str(tmp_path / "runs"), "--workdir", str(workdir),
        "--linger", "0", *flags, "--", *command,
        cwd=tmp_path,
    )  # fmt: skip


def test_the_instrumented_example_runs_like_the_built_in_trainer(cluster, tmp_path):
    steps = 12
    project = tmp_path / "ddp_track"
    shutil.copytree(EXAMPLES / "ddp_track", project)
    command = ["python", "train.py", "--steps", str(steps)]
    result = _run(cluster, tmp_path, project, *command, flags=())  # with /metrics
    assert result.returncode == 0, job_failure(result)
    (record,) = _records(tmp_path / "runs")
    summary = record["summary"]
    assert record["status"] == "succeeded" and summary["ranks_reported"] == 2
    assert (summary["steps"], summary["target_steps"]) == (steps, steps)
    assert summary["samples"] == 2 * steps * 32
    assert summary["allreduce_bytes"] == steps * GRAD_BYTES
    assert record["project"]["command"] == f"python train.py --steps {steps}"
    assert [s["sent_files"] for s in record["project"]["shipped"]] == [2, 2]  # train.py, README
    lines = Path(record["logs"]["merged"]).read_text().splitlines()
    parsed = [p for p in map(parse_line, lines) if p]
    last = {p.rank: int(p.fields()["step"]) for p in parsed if p.message.startswith("step ")}
    assert last == {0: steps, 1: steps}
    assert "mini-yellow torchrun rank 1 done: 12 steps" in "\n".join(lines)


def test_a_rank_that_raises_fails_the_job_and_leaves_nothing(tmp_path):
    # No restarts: each one would re-import torch and raise again, which on a busy machine
    # takes minutes and says nothing more.
    config = loopback_config(tmp_path / "state", max_restarts=0)
    cluster = (config, write_config(config, tmp_path / "config.yaml"))
    project = tmp_path / "boom"
    project.mkdir()
    (project / "boom.py").write_text(BOOM)
    result = _run(cluster, tmp_path, project, "python", "boom.py")
    assert result.returncode not in (0, None)
    (record,) = _records(tmp_path / "runs")
    assert record["status"].startswith("failed")
    lines = Path(record["logs"]["merged"]).read_text().splitlines()
    parsed = [p for p in map(parse_line, lines) if p]
    raised = [p for p in parsed if "ValueError: boom on purpose in rank 1" in p.message]
    assert {(p.node, p.rank) for p in raised} == {("mini-yellow", 1)}, lines[-30:]
    wait_until(
        lambda: (
            not processes_naming(record["job_id"])
            and not processes_naming("minicluster.track.observe boom.py")
        ),
        "no torchrun or rank of the job",
        30,
    )


def test_minicluster_stop_stops_every_node_by_its_recorded_pids(cluster, tmp_path):
    _config, path = cluster
    project = tmp_path / "sleeper"
    project.mkdir()
    (project / "sleeper.py").write_text(SLEEPER)
    runs = tmp_path / "runs"
    launcher = subprocess.Popen(
        cli("run-job", "--config", str(path), "--logs-dir", str(tmp_path / "logs"),
            "--runs-dir", str(runs), "--workdir", str(project), "--no-metrics", "--linger", "0",
            "--", "python", "sleeper.py"),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: [r for r in _records(runs) if r.get("status") == "running"],
            "the running job's record",
            timeout=180,
        )
        (record,) = _records(runs)
        job = record["job_id"]
        wait_until(
            lambda: (
                len(
                    [
                        p
                        for p in processes_naming("minicluster.track.observe sleeper.py")
                        if "torch.distributed.run" not in " ".join(p.cmdline())
                    ]
                )
                == 2
            ),
            "both ranks",
            timeout=180,
        )
        stop = run_cli("stop", job, "--config", str(path), "--runs-dir", str(runs), cwd=tmp_path)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert "mini-red: stopped PID" in stop.stdout and "mini-yellow: stopped PID" in stop.stdout
        wait_until(
            lambda: (
                not processes_naming(job)
                and not processes_naming("minicluster.track.observe sleeper.py")
            ),
            "no torchrun or rank of the job",
            30,
        )
        output, _ = launcher.communicate(timeout=120)
        assert launcher.returncode != 0, output[-2000:]
        # Stopping again finds nothing left and says so.
        again = run_cli("stop", job, "--config", str(path), "--runs-dir", str(runs), cwd=tmp_path)
        assert again.returncode == 0 and again.stdout.count("had already exited") == 2
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
