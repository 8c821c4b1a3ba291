"""`minicluster logs JOB_ID`: per-rank files from every node, merged by time."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.launcher.conftest import run_cli

FIXTURES = Path(__file__).parent / "fixtures"
JOB = "20261128-154000-0a0b0c"


def test_logs_fetches_every_nodes_rank_files_and_merges_them(tmp_path, cluster):
    config, config_file = cluster
    for rank, node in enumerate(config.nodes):  # rank 0 on mini-red, rank 1 on mini-yellow
        job_dir = Path(config.trainer.resolve_dir(config.trainer.log_dir, node)) / JOB
        job_dir.mkdir(parents=True)
        shutil.copy(FIXTURES / f"rank{rank}.log", job_dir / f"rank{rank}.log")
    # An earlier merged log from run-job: its torchrun line is in no rank file.
    (tmp_path / "logs").mkdir()
    torchrun_line = "2026-11-28T15:40:01.500+00:00 mini-yellow torchrun W restarting workers"
    (tmp_path / "logs" / f"{JOB}.log").write_text(
        "2026-11-28T15:40:00.100+00:00 mini-red rank=0 INFO stale line\n" + torchrun_line + "\n"
    )

    result = run_cli("logs", JOB, "--config", str(config_file), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "mini-red: 1 rank files" in result.stderr
    assert "mini-yellow: 1 rank files" in result.stderr
    assert "note: clock" not in result.stderr  # one machine, one clock
    merged = (tmp_path / "logs" / f"{JOB}.log").read_text().splitlines()
    times = [line.split(" ", 1)[0] for line in merged]
    assert times == sorted(times)
    assert "stale line" not in "\n".join(merged)  # rank lines come from the rank files
    assert torchrun_line in merged
    expected_order = ["rank=0", "rank=1", "rank=0", "rank=1", "torchrun", "rank=0"]
    assert [line.split(" ")[2] for line in merged[:6]] == expected_order
    assert len(merged) == 10  # 7 rank lines, 2 traceback lines, 1 torchrun line
    assert sorted(p.name for p in (tmp_path / "logs" / JOB).iterdir()) == [
        "rank0.log",
        "rank1.log",
    ]
    assert f"logs/{JOB}.log: 9 rank lines from 2 files" in result.stdout


def test_logs_of_an_unknown_job_fail(tmp_path, cluster):
    _, config_file = cluster
    result = run_cli("logs", "no-such-job", "--config", str(config_file), cwd=tmp_path)
    assert result.returncode == 1
    assert "no rank log files of job no-such-job on any node" in result.stderr
    result = run_cli("logs", "../etc", "--config", str(config_file), cwd=tmp_path)
    assert result.returncode == 2 and "not a job id" in result.stderr
