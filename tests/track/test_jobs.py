"""Two ranks under torchrun on loopback (gloo): a tracked script and an observed one."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from minicluster.core.logformat import LogLine, parse_line
from tests.support import wait_until
from tests.trainer.conftest import REPO, TORCHRUN, free_port_pair, scrape, value

pytestmark = pytest.mark.integration

SCRIPTS = Path(__file__).resolve().parent / "scripts"
STEPS = 12
DDP_TRACK_GRAD_BYTES = 4 * (32 * 16 + 16 + 16 * 4 + 4)
PLAIN_GRAD_BYTES = 4 * (10 * 4 + 4)


class Run:
    def __init__(self, tmp: Path, job_id: str, *command: str, linger: float = 8):
        self.tmp, self.job_id, self.base = tmp, job_id, free_port_pair()
        self.output = tmp / f"{job_id}.out"
        env = {
            **os.environ,
            "MINICLUSTER_JOB_ID": job_id,
            "MINICLUSTER_NODE": "mini-test",
            "MINICLUSTER_METRICS_PORT": str(self.base),
            "MINICLUSTER_RUN_DIR": str(tmp / "run"),
            "MINICLUSTER_LOG_DIR": str(tmp / "logs"),
            "MINICLUSTER_LINGER": str(linger),
            "MINICLUSTER_LOG_INTERVAL": "5",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("GLOO_SOCKET_IFNAME", None)
        argv = [TORCHRUN, "--standalone", "--nproc-per-node=2", "--monitor-interval=0.1"]
        with self.output.open("w") as out:
            self.process = subprocess.Popen(
                [*argv, *command], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=30)

    def lines(self, rank: int) -> list[LogLine]:
        path = self.tmp / "logs" / self.job_id / f"rank{rank}.log"
        return [line for line in map(parse_line, path.read_text().splitlines()) if line]

    def when(self, rank: int, name: str) -> dict:
        def probe():
            samples = scrape(self.base + rank)
            return samples if (name, ()) in samples and value(samples, name) in (0, 1) else None

        return wait_until(probe, f"rank {rank} to publish {name}", timeout=120)

    def discovery(self) -> dict[int, dict]:
        files = (self.tmp / "run").glob(f"{self.job_id}-rank*.rank.json")
        return {entry["rank"]: entry for entry in (json.loads(p.read_text()) for p in files)}


@pytest.fixture
def runs(tmp_path):
    started: list[Run] = []

    def start(job_id: str, *command: str, **kwargs) -> Run:
        run = Run(tmp_path, job_id, *command, **kwargs)
        started.append(run)
        return run

    yield start
    for run in started:
        run.stop()


def summary_of(lines: list[LogLine]) -> dict:
    found = [line.message for line in lines if line.message.startswith("summary ")]
    assert len(found) == 1, found
    return json.loads(found[0].removeprefix("summary "))


def test_tracked_ddp_script_publishes_exact_steps_and_gradient_bytes(runs):
    run = runs("tracked", str(SCRIPTS / "ddp_track.py"), str(STEPS))
    final = {}
    for rank in (0, 1):
        wait_until(
            lambda r=rank: value(scrape(run.base + r), "trainer_job_finished") == 1,
            f"rank {rank} to finish", timeout=120,
        )  # fmt: skip
        final[rank] = scrape(run.base + rank)
    registered = run.discovery()
    assert run.process.wait(timeout=60) == 0, run.output.read_text()

    for rank in (0, 1):
        s = final[rank]
        assert value(s, "trainer_steps_total") == STEPS
        assert value(s, "trainer_samples_total") == STEPS * 4
        assert value(s, "trainer_allreduce_calls_total") == STEPS
        assert value(s, "trainer_allreduce_bytes_total") == STEPS * DDP_TRACK_GRAD_BYTES
        assert value(s, "trainer_allreduce_bucket_seconds_count") == STEPS
        assert value(s, "trainer_step_duration_seconds_count") == STEPS
        assert value(s, "trainer_progress_ratio") == 1
        assert value(s, "trainer_model_parameters") == DDP_TRACK_GRAD_BYTES / 4
        assert value(s, "trainer_phase_seconds_total", phase="backward") > 0
        assert value(s, "trainer_loss") >= 0
        info = dict(job_id="tracked", world_size="2", backend="gloo", device="cpu",
                    model="sequential")  # fmt: skip
        assert value(s, "trainer_info", **info) == 1
        entry = registered[rank]
        assert (entry["target"], entry["node"]) == (f"127.0.0.1:{run.base + rank}", "mini-test")
        lines = run.lines(rank)
        assert lines[0].message.startswith("start job_id=tracked world_size=2 target=12")
        steps = [int(line.fields()["step"]) for line in lines if line.message.startswith("step ")]
        assert steps == [5, 10, 12]
        summary = summary_of(lines)
        assert summary["allreduce_bytes"] == STEPS * DDP_TRACK_GRAD_BYTES
        assert summary["grad_bytes"] == DDP_TRACK_GRAD_BYTES
        assert f"model grad_bytes={DDP_TRACK_GRAD_BYTES}" in [x.message for x in lines]
    assert run.discovery() == {}  # removed after the linger


def test_an_uninstrumented_module_is_observed_exactly(runs):
    run = runs(
        "plain", "-m", "minicluster.track.observe", "-m", "tests.track.scripts.plain_collectives"
    )
    final = {rank: run.when(rank, "trainer_exit_code") for rank in (0, 1)}
    assert run.process.wait(timeout=60) == 0, run.output.read_text()
    expected = {
        "all_reduce": (3, 12000),
        "broadcast": (2, 4000),
        "all_gather": (1, 800),
        "all_gather_into_tensor": (1, 256),
        "reduce_scatter_tensor": (1, 256),
        "barrier": (2, 0),
    }
    for rank in (0, 1):
        s = final[rank]
        for op, (calls, nbytes) in expected.items():
            assert value(s, "trainer_collective_calls_total", op=op) == calls, op
            assert value(s, "trainer_collective_bytes_total", op=op) == nbytes, op
            assert value(s, "trainer_collective_seconds_total", op=op) > 0, op
        assert value(s, "trainer_allreduce_calls_total") == 2  # DDP: one bucket, two steps
        assert value(s, "trainer_allreduce_bytes_total") == 2 * PLAIN_GRAD_BYTES
        assert value(s, "trainer_exit_code") == 0
        assert value(s, "trainer_job_finished") == 1
        assert value(s, "trainer_start_timestamp_seconds") > 1.7e9
        assert value(s, "process_cpu_seconds_total") > 0
        assert value(s, "process_resident_memory_bytes") > 10_000_000
        lines = run.lines(rank)
        assert lines[0].message.startswith("start job_id=plain world_size=2")
        assert "end exit_status=0" in " ".join(line.message for line in lines)
        summary = summary_of(lines)
        assert summary["exit_status"] == 0
        assert {op: (v["calls"], v["bytes"]) for op, v in summary["collectives"].items()} == (
            expected
        )
        assert summary["allreduce_bytes"] == 2 * PLAIN_GRAD_BYTES
    assert "plain script done on rank 1" in run.output.read_text()


def test_a_rank_that_raises_fails_the_job_with_its_traceback(runs):
    run = runs(
        "boom", "-m", "minicluster.track.observe", str(SCRIPTS / "plain_collectives.py"),
        "--fail-rank", "1", linger=30,
    )  # fmt: skip
    assert run.process.wait(timeout=120) != 0
    lines = run.lines(1)
    errors = [line for line in lines if line.level == "ERROR"]
    assert errors[0].message.startswith("failed ") and errors[0].fields()["error"] == "ValueError"
    traceback = [line.message.removeprefix("traceback ") for line in errors[1:]]
    assert traceback[0] == "Traceback (most recent call last):"
    assert any("plain_collectives.py" in text and "in main" in text for text in traceback)
    assert traceback[-1] == "ValueError: rank 1 was told to fail"
    assert {(line.node, line.rank) for line in errors} == {("mini-test", 1)}
    assert "end exit_status=1" in [line.message.split(" seconds=")[0] for line in lines]
    assert not any(line.message.startswith("summary ") for line in lines)
    stdout = run.output.read_text()
    assert str(errors[-1]) in stdout  # the merged output carries them with node and rank
