"""Checkpoint retention: the last K saves of a job, and no job folder older than D days."""

from __future__ import annotations

import os
import time

import pytest
import torch

from minicluster.core.config import ConfigError, parse_config
from minicluster.trainer.checkpoint import CheckpointStore

DAY = 86400.0


def save_steps(store: CheckpointStore, steps, mtime: float | None = None) -> None:
    for step in steps:
        path = store.save(step, {"step": step, "weights": torch.zeros(2)})
        if mtime is not None:
            os.utime(path, (mtime, mtime))


@pytest.mark.parametrize(("keep", "left"), [(2, [40, 50]), (3, [30, 40, 50])])
def test_keep_last_k_leaves_exactly_the_last_k(tmp_path, keep, left):
    store = CheckpointStore(tmp_path / "job-now")
    save_steps(store, [10, 20, 30, 40, 50])
    store.prune(keep)
    assert store.steps() == left


def test_job_folders_older_than_d_days_go_and_younger_ones_stay(tmp_path):
    now = time.time()
    current = CheckpointStore(tmp_path / "job-now")
    old = CheckpointStore(tmp_path / "job-old")
    young = CheckpointStore(tmp_path / "job-young")
    save_steps(current, [10], mtime=now - 40 * DAY)  # the running job is never removed
    save_steps(old, [10, 20], mtime=now - 8 * DAY)
    save_steps(young, [10, 20], mtime=now - 6 * DAY)
    notes = tmp_path / "notes"  # not a checkpoint folder: left alone however old
    notes.mkdir()
    (notes / "readme.txt").write_text("mine")
    os.utime(notes / "readme.txt", (now - 90 * DAY, now - 90 * DAY))

    removed = current.prune_old_jobs(max_age_days=7, now=now)

    assert removed == [tmp_path / "job-old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job-now", "job-young", "notes"]
    assert young.steps() == [10, 20] and current.steps() == [10]


def test_retention_is_configured_under_trainer():
    nodes = [{"name": "a", "address": "10.0.0.1", "role": "master", "ssh_user": "me"}]
    config = parse_config(
        {"nodes": nodes, "trainer": {"checkpoint_keep_last": 3, "checkpoint_max_age_days": 7}},
        "c.yaml",
    )
    assert (config.trainer.checkpoint_keep_last, config.trainer.checkpoint_max_age_days) == (3, 7)
    # One save fewer than two could leave a node without the step the others resume from.
    with pytest.raises(ConfigError, match=r"trainer\.checkpoint_keep_last"):
        parse_config({"nodes": nodes, "trainer": {"checkpoint_keep_last": 1}}, "c.yaml")
