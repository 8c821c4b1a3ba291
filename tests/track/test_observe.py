"""`python -m minicluster.track.observe`: the program runs as Python would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from minicluster.core.logformat import parse_line

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PROBE = HERE / "scripts" / "argv_probe.py"


def observe(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "MINICLUSTER_METRICS_PORT": "off"}
    return subprocess.run(
        [sys.executable, "-m", "minicluster.track.observe", *args],
        capture_output=True, text=True, timeout=120, cwd=cwd, env=env,
    )  # fmt: skip


def messages(stdout: str) -> list[str]:
    return [line.message for line in map(parse_line, stdout.splitlines()) if line]


def test_a_script_gets_main_its_argv_its_directory_and_its_exit_status():
    run = observe(str(PROBE), "3", "--flag")
    assert run.returncode == 3, run.stderr
    assert f"probe name=__main__ argv0={PROBE} args=3,--flag" in run.stdout
    assert f"probe path0={PROBE.parent}" in run.stdout
    said = messages(run.stdout)
    assert said[0].startswith("start ") and said[1].startswith("program kind=script")
    assert "end exit_status=3" in " ".join(said)
    assert not any(m.startswith("summary ") for m in said)  # a failed run has no summary


def test_a_module_runs_from_the_current_directory_and_success_gets_a_summary():
    run = observe("-m", "tests.track.scripts.argv_probe", "0", "x")
    assert run.returncode == 0, run.stderr
    assert f"probe name=__main__ argv0={PROBE} args=0,x" in run.stdout
    assert f"probe path0={REPO}" in run.stdout
    said = messages(run.stdout)
    assert said[-2].startswith("end exit_status=0") and said[-1].startswith("summary ")


def test_bad_targets_are_one_line_and_exit_2(tmp_path):
    for args, message in [
        ((str(tmp_path / "nope.py"),), f"observe: {tmp_path / 'nope.py'}: no such file"),
        (("-m", "no_such_module_here"), "observe: -m no_such_module_here: no such module"),
        ((), "usage: python -m minicluster.track.observe"),
    ]:
        run = observe(*args)
        assert run.returncode == 2 and run.stdout == ""
        assert run.stderr.strip().splitlines() == [run.stderr.strip()]
        assert run.stderr.startswith(message), run.stderr


def test_the_built_in_trainer_under_observe_counts_once_into_the_same_tracker(tmp_path):
    run = observe(
        "-m", "minicluster.trainer", "--steps=6", "--batch-size=4", "--log-interval=3",
        f"--log-dir={tmp_path / 'logs'}", f"--run-dir={tmp_path / 'run'}",
        f"--checkpoint-dir={tmp_path / 'ckpt'}", "--checkpoint-interval=0", "--job-id=solo",
        "--no-metrics", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    said = messages(run.stdout)
    assert [m.split(" ")[1] for m in said if m.startswith("step ")] == ["step=3", "step=6"]
    summaries = [m for m in said if m.startswith("summary ")]
    assert len(summaries) == 1 and said[-1] == summaries[0]
    summary = json.loads(summaries[0].removeprefix("summary "))
    assert (summary["steps"], summary["samples"], summary["exit_status"]) == (6, 24, 0)
    # One rank: DDP's gradient all-reduce once per step, counted by one hook only.
    assert summary["allreduce_calls"] == 6
    assert summary["allreduce_bytes"] == 6 * summary["grad_bytes"]
