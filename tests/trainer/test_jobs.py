"""Real torchrun jobs, 2 ranks, gloo on the CPU: what each rank publishes and logs."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys

import pytest
import requests
import torch

from tests.support import require_tool
from tests.trainer.conftest import (
    REPO,
    TINY,
    TORCHRUN,
    free_port_pair,
    mlp_parameters,
    transformer_parameters,
    value,
    write_config,
)

pytestmark = pytest.mark.integration

SUMMARY_KEYS = {
    "job_id", "rank", "world_size", "steps", "samples", "wall_seconds", "phase_seconds",
    "allreduce_calls", "allreduce_bytes", "allreduce_seconds", "grad_bytes", "restarts",
    "final_loss",
}  # fmt: skip
PHASES = {"data", "forward", "backward", "comm", "optimizer", "staging"}


def summary_of(lines) -> dict:
    summaries = [line.message for line in lines if line.message.startswith("summary ")]
    assert len(summaries) == 1, summaries
    return json.loads(summaries[0].removeprefix("summary "))


def test_two_ranks_publish_exact_counters_with_built_in_defaults(launch):
    steps, batch = 20, 8
    # Default model (MLP, hidden 256, 2 layers, vocab 64), float32 gradients.
    grad_bytes = 4 * mlp_parameters(64, 256, 2)
    job = launch(
        f"--steps={steps}", f"--batch-size={batch}", "--log-interval=5",
        "--checkpoint-interval=10", "--linger=8", "--step-sleep=0.02",
    )  # fmt: skip
    final = {rank: job.finished(rank) for rank in (0, 1)}
    raw = requests.get(f"http://127.0.0.1:{job.base_port}/metrics", timeout=5).text
    registered = job.discovery()
    assert job.wait(timeout=60) == 0, job.stdout()

    host = socket.gethostname().split(".")[0].lower()
    for rank in (0, 1):
        s = final[rank]
        assert value(s, "trainer_steps_total") == steps
        assert value(s, "trainer_samples_total") == steps * batch
        assert value(s, "trainer_allreduce_calls_total") == steps  # one bucket per step
        assert value(s, "trainer_allreduce_bytes_total") == steps * grad_bytes
        assert value(s, "trainer_target_steps") == steps
        assert value(s, "trainer_progress_ratio") == 1
        assert value(s, "trainer_job_finished") == 1
        assert value(s, "trainer_restarts_total") == 0
        assert value(s, "trainer_model_parameters") == grad_bytes / 4
        assert value(s, "trainer_last_checkpoint_step") == steps
        assert value(s, "trainer_epoch") == 0
        assert value(s, "trainer_step_duration_seconds_count") == steps
        assert value(s, "trainer_allreduce_bucket_seconds_count") == steps
        assert 0 < value(s, "trainer_loss") < math.log(64)
        info = dict(job_id="job", world_size="2", backend="gloo", device="cpu", model="mlp")
        assert value(s, "trainer_info", **info) == 1
        for phase in PHASES - {"staging"}:
            assert value(s, "trainer_phase_seconds_total", phase=phase) > 0, phase
        assert value(s, "trainer_phase_seconds_total", phase="staging") == 0
        # One bucket per step: nothing overlaps its all-reduce, so all of it is exposed.
        comm = value(s, "trainer_phase_seconds_total", phase="comm")
        assert comm >= value(s, "trainer_allreduce_seconds_total") > 0
        assert value(s, "process_resident_memory_bytes") > 10_000_000
        assert value(s, "process_open_fds") > 0
        assert value(s, "process_cpu_seconds_total") > 0
    counters = [n for (n, _labels) in final[0] if n.endswith("_total")]
    for name in counters:
        if not name.startswith(("process_", "trainer_phase", "trainer_allreduce_seconds")):
            assert value(final[0], name) == value(final[1], name), name

    # The discovery files were there while the ranks lingered, and are gone now.
    assert set(registered) == {0, 1}
    for rank, entry in registered.items():
        assert entry["target"] == f"127.0.0.1:{job.base_port + rank}"
        assert (entry["job_id"], entry["local_rank"], entry["node"]) == ("job", rank, host)
    assert job.discovery() == {}

    require_tool("promtool", "apt-get install prometheus (Debian) or brew install prometheus")
    lint = subprocess.run(
        ["promtool", "check", "metrics"], input=raw, capture_output=True, text=True, timeout=30
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr

    stdout = job.stdout()
    for rank in (0, 1):
        lines = job.rank_lines(rank)
        assert {(line.node, line.rank, line.level) for line in lines} == {(host, rank, "INFO")}
        for line in lines:
            assert str(line) in stdout  # the same lines went to stdout
        start = lines[0].fields()
        assert lines[0].message.startswith("start ")
        assert start == {
            "job_id": "job", "world_size": "2", "backend": "gloo", "device": "cpu",
            "model": "mlp", "params": str(grad_bytes // 4), "grad_bytes": str(grad_bytes),
            "restart": "0", "resume_step": "0",
        }  # fmt: skip
        step_lines = [line.fields() for line in lines if line.message.startswith("step ")]
        assert [int(f["step"]) for f in step_lines] == [5, 10, 15, 20]
        assert {f["target"] for f in step_lines} == {str(steps)}
        assert all(float(f["samples_per_second"]) > 0 for f in step_lines)
        losses = [float(f["loss"]) for f in step_lines]
        assert losses[-1] < losses[0] - 0.5, losses  # the data is learnable
        summary = summary_of(lines)
        assert set(summary) == SUMMARY_KEYS
        assert set(summary["phase_seconds"]) == PHASES
        assert (summary["rank"], summary["steps"], summary["samples"]) == (rank, 20, 160)
        assert summary["allreduce_bytes"] == steps * grad_bytes
        assert summary["grad_bytes"] == grad_bytes
        assert summary["final_loss"] == pytest.approx(losses[-1], abs=1e-4)
        # The phases partition the steps; wall time adds logging and checkpoints.
        phase_total = sum(summary["phase_seconds"].values())
        assert 0.5 * summary["wall_seconds"] < phase_total <= summary["wall_seconds"]
    # Checkpoints: every 10 steps on the node, the last two kept.
    saved = sorted(p.name for p in (job.checkpoint_dir / "job").iterdir())
    assert saved == ["step-00000010.pt", "step-00000020.pt"]


def test_transformer_job_reads_config_and_pins_gloo_to_the_node_interface(launch, tmp_path):
    steps, base = 12, free_port_pair()
    config = write_config(
        tmp_path,
        **TINY,
        model="transformer",
        steps=steps,
        log_interval=4,
        checkpoint_interval=6,
        linger_seconds=5,
        metrics_base_port=base,
    )
    job = launch("--config", str(config), "--node", "mini-red", base_port=base, own_dirs=False)
    install = tmp_path / "state" / "mini-red"
    job.log_dir, job.run_dir = install / "logs", install / "run"
    final = {rank: job.finished(rank) for rank in (0, 1)}
    registered = job.discovery()
    assert job.wait(timeout=60) == 0, job.stdout()

    params = transformer_parameters(TINY["vocab_size"], TINY["hidden_size"], 1, TINY["seq_len"])
    for rank in (0, 1):
        s = final[rank]
        assert value(s, "trainer_model_parameters") == params
        assert value(s, "trainer_steps_total") == steps
        assert value(s, "trainer_samples_total") == steps * TINY["batch_size"]
        assert value(s, "trainer_allreduce_bytes_total") == steps * 4 * params
        assert value(s, "trainer_progress_ratio") == 1
        info = dict(job_id="job", world_size="2", backend="gloo", device="cpu", model="transformer")
        assert value(s, "trainer_info", **info) == 1
        assert registered[rank]["node"] == "mini-red"
        messages = [line.message for line in job.rank_lines(rank)]
        assert (
            "distributed gloo_socket_ifname=lo pg_timeout_seconds=120 grad_compression=none "
            "bucket_cap_mb=25"
        ) in messages
    # 512 samples / 2 ranks / batch 8 = 32 batches per epoch: 12 steps stay in epoch 0.
    assert sorted(p.name for p in (install / "checkpoints" / "job").iterdir()) == [
        "step-00000006.pt",
        "step-00000012.pt",
    ]


@pytest.mark.parametrize("model", ["mlp", "transformer"])
def test_ddp_gradients_equal_one_rank_with_double_batch_and_staged_path(tmp_path, model):
    probe = REPO / "tests" / "trainer" / "grad_probe.py"
    run = subprocess.run(
        [TORCHRUN, "--standalone", "--nproc-per-node=2", str(probe), str(tmp_path), model],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    single = ranks[0]["single"]
    for result in ranks:
        assert result["hook"] == {"calls": 1, "bytes": result["grad_bytes"]}
        assert result["staged_hook"] == {"calls": 1, "bytes": result["grad_bytes"]}
        assert result["ddp"].keys() == single.keys()
        for name, grad in result["ddp"].items():
            assert grad.abs().sum() > 0, name
            # Mean of two half-batch means vs one mean: equal up to summation order.
            torch.testing.assert_close(grad, single[name], rtol=1e-4, atol=1e-6)
            # Same arithmetic as DDP's hook (divide, then sum two values): bit-identical.
            assert torch.equal(result["staged"][name], grad), name
    for name in single:
        assert torch.equal(ranks[0]["ddp"][name], ranks[1]["ddp"][name]), name


def test_without_torchrun_and_without_metrics(tmp_path):
    port = free_port_pair()
    run = subprocess.run(
        [
            sys.executable, "-m", "minicluster.trainer", "--steps=6", "--batch-size=4",
            "--log-interval=3",
            "--no-metrics", f"--metrics-base-port={port}", f"--run-dir={tmp_path / 'run'}",
            f"--log-dir={tmp_path / 'logs'}", f"--checkpoint-dir={tmp_path / 'ckpt'}",
            "--checkpoint-interval=0", "--job-id=solo", "--linger=30",
        ],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = (tmp_path / "logs" / "solo" / "rank0.log").read_text().splitlines()
    assert "start job_id=solo world_size=1 backend=gloo" in lines[0]
    summary = json.loads(lines[-1].split(" summary ", 1)[1])
    assert summary["steps"] == 6 and summary["world_size"] == 1
    # Nothing counted the all-reduce, so nothing pretends to know it.
    assert summary["allreduce_calls"] is None and summary["allreduce_bytes"] is None
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
    assert not (tmp_path / "ckpt").exists()
    # No endpoint, so no linger either: 30 s would have hit the timeout above.


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps=0"], "trainer: command line: --steps: Input should be greater than or equal"),
        (["--config=/nonexistent.yaml"], "trainer: /nonexistent.yaml: no such file"),
        (["--job-id=../x"], "trainer: command line: --job-id: '../x': use letters"),
        (
            ["--device=mps"],
            "trainer: settings: trainer.device: mps was asked for but is not available",
        ),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(tmp_path, args, message):
    run = subprocess.run(
        [
            sys.executable, "-m", "minicluster.trainer", *args,
            f"--log-dir={tmp_path}", f"--run-dir={tmp_path}",
        ],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert run.stderr.startswith(message), run.stderr
