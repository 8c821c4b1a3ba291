"""Fault tolerance under torchrun: a killed rank, a rank that always fails, a frozen peer."""

from __future__ import annotations

import os
import signal
import socket
import time

import psutil
import pytest

from tests.support import wait_until
from tests.trainer.conftest import free_port_pair, mlp_parameters, process_gone, value

pytestmark = pytest.mark.integration

GRAD_BYTES = 4 * mlp_parameters(vocab=64, hidden=256, layers=2)  # the default MLP


def attempts(lines) -> dict[int, list]:
    """Log lines grouped by torchrun attempt (the `restart=` of the start/failed lines)."""
    groups: dict[int, list] = {}
    current = None
    for line in lines:
        fields = line.fields()
        if line.message.startswith(("start ", "failed ")):
            current = int(fields["restart"])
        groups.setdefault(current, []).append(line)
    return groups


def test_sigkill_of_one_rank_restarts_the_job_from_the_last_checkpoint(launch):
    steps, interval, batch = 40, 5, 8
    job = launch(
        f"--steps={steps}", f"--batch-size={batch}", f"--checkpoint-interval={interval}",
        "--log-interval=1", "--step-sleep=0.1", "--linger=8",
        max_restarts=1,
    )  # fmt: skip
    victim = job.rank_pid(1)
    job.scrape_when(1, lambda s: s[("trainer_steps_total", ())] >= 12, "rank 1 to pass step 12")
    os.kill(victim, signal.SIGKILL)

    final = {rank: job.finished(rank, timeout=120) for rank in (0, 1)}
    assert job.wait(timeout=60) == 0, job.stdout()
    for rank in (0, 1):
        s = final[rank]
        # Counters came back from the checkpoint: no step counted twice, none lost.
        assert value(s, "trainer_steps_total") == steps
        assert value(s, "trainer_samples_total") == steps * batch
        assert value(s, "trainer_allreduce_calls_total") == steps
        assert value(s, "trainer_allreduce_bytes_total") == steps * GRAD_BYTES
        assert value(s, "trainer_restarts_total") == 1
        assert value(s, "trainer_progress_ratio") == 1
        assert value(s, "trainer_last_checkpoint_step") == steps

    first_try = {r: attempts(job.rank_lines(r))[0] for r in (0, 1)}
    second_try = {r: attempts(job.rank_lines(r))[1] for r in (0, 1)}
    done_before = max(
        int(line.fields()["step"])
        for lines in first_try.values()
        for line in lines
        if line.message.startswith("step ")
    )
    resumes = {int(lines[0].fields()["resume_step"]) for lines in second_try.values()}
    assert len(resumes) == 1, resumes  # the ranks agreed
    resume = resumes.pop()
    assert resume > 0 and resume % interval == 0
    assert done_before - resume <= interval, (done_before, resume)
    for rank in (0, 1):
        again = [x for x in second_try[rank] if x.message.startswith("step ")]
        redone = [int(x.fields()["step"]) for x in again]
        assert redone == list(range(resume + 1, steps + 1))  # sampler carried on, no gaps


def test_a_rank_that_always_fails_ends_the_job_after_max_restarts_plus_one(launch):
    base = free_port_pair()
    # Rank 1's metrics port is taken: it fails on every attempt.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", base + 1))
        squatter.listen()
        job = launch("--steps=5", "--linger=0", max_restarts=1, base_port=base)
        code = job.wait(timeout=150)
    assert code != 0
    failures = [line for line in job.rank_lines(1) if line.message.startswith("failed ")]
    assert [line.fields()["restart"] for line in failures] == ["0", "1"]
    assert all("Address already in use" in line.message for line in failures)
    assert all(line.level == "ERROR" for line in failures)
    assert not any(line.message.startswith("summary ") for line in job.rank_lines(0))


def test_a_frozen_peer_fails_the_survivor_within_the_pg_timeout(launch):
    timeout = 10
    job = launch(
        "--steps=100000", "--batch-size=4", f"--pg-timeout-seconds={timeout}",
        "--step-sleep=0.05", "--checkpoint-interval=0", "--log-interval=1000",
    )  # fmt: skip
    survivor, frozen = job.rank_pid(0), job.rank_pid(1)
    job.scrape_when(0, lambda s: s[("trainer_steps_total", ())] >= 3, "a few steps")
    os.kill(frozen, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        wait_until(lambda: process_gone(survivor), "the survivor to fail", timeout=60)
        elapsed = time.monotonic() - stopped
    finally:
        os.kill(frozen, signal.SIGKILL)  # a stopped process takes no SIGTERM from torchrun
    assert job.wait(timeout=60) != 0
    # gloo waited the configured 10 s (not its 30 min default), give or take a step.
    assert timeout - 3 <= elapsed <= timeout + 15, elapsed
    failure = [line for line in job.rank_lines(0) if line.message.startswith("failed ")]
    assert len(failure) == 1
    assert "Timed out waiting 10000ms" in failure[0].message
    assert not psutil.pid_exists(frozen) or process_gone(frozen)
