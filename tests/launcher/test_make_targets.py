"""The Makefile targets are thin: they pass the config (or --local) and STEPS through."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support import require_tool, without_outer_make

REPO = Path(__file__).resolve().parents[2]


def _dry_run(*args: str) -> str:
    make = require_tool("make", "apt-get install make")
    config = next((a.split("=", 1)[1] for a in args if a.startswith("CONFIG=")), "config.yaml")
    result = subprocess.run(
        # -o: treat the venv and the config file as there, so only the target's own
        # command is printed.
        [make, "-n", "-o", ".venv/.installed", "-o", config, *args],
        cwd=REPO, capture_output=True, text=True, check=True, env=without_outer_make(),
    )  # fmt: skip
    return result.stdout.strip()


def test_run_job_uses_the_config_unless_local_and_passes_steps():
    assert _dry_run("run-job") == ".venv/bin/minicluster run-job --config config.yaml"
    assert _dry_run("run-job", "STEPS=7", "CONFIG=c.yaml") == (
        ".venv/bin/minicluster run-job --config c.yaml --steps 7"
    )
    assert _dry_run("run-job", "LOCAL=1", "STEPS=5", "JOB_FLAGS=--batch-size 4") == (
        ".venv/bin/minicluster run-job --local --steps 5 --batch-size 4"
    )


def test_status_logs_and_e2e():
    assert _dry_run("status") == ".venv/bin/minicluster status --config config.yaml"
    assert _dry_run("logs", "JOB=j1", "LOCAL=1").endswith(".venv/bin/minicluster logs j1 --local")
    assert _dry_run("e2e") == ".venv/bin/pytest -m e2e"


def test_a_missing_config_names_the_command_that_creates_it(tmp_path):
    make = require_tool("make", "apt-get install make")
    missing = tmp_path / "nowhere.yaml"
    line = f"{missing} is missing: run `make config`, then set your Minis' addresses in it"
    result = subprocess.run(
        [make, "-o", ".venv/.installed", "status", f"CONFIG={missing}"],
        cwd=REPO, capture_output=True, text=True, env=without_outer_make(),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == line
    for target in ("run-job", "logs", "deploy", "undeploy", "doctor"):
        plan = subprocess.run(
            [make, "-n", "-o", ".venv/.installed", target, f"CONFIG={missing}", "JOB=j"],
            cwd=REPO, capture_output=True, text=True, env=without_outer_make(),
        )  # fmt: skip
        first, second = plan.stdout.splitlines()[:2]
        assert first.startswith(f'echo "{missing} is missing: run'), target
        assert second == "exit 2", target


def test_run_job_runs_your_command_after_a_double_dash_and_stop_takes_the_job():
    assert _dry_run("run-job", "LOCAL=1", "CMD=python train.py --epochs 3") == (
        ".venv/bin/minicluster run-job --local   -- python train.py --epochs 3"
    )
    assert _dry_run("stop", "JOB=j1").endswith(".venv/bin/minicluster stop j1 --config config.yaml")
