"""Atomic checkpoint files, pruning, and what a crash mid-save leaves behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from minicluster.trainer import checkpoint
from minicluster.trainer.checkpoint import KEEP, CheckpointStore


def state(step: int) -> dict:
    return {"step": step, "weights": torch.full((3,), float(step)), "counters": [{"steps": step}]}


def test_save_load_and_the_newest_step(tmp_path):
    store = CheckpointStore(tmp_path / "job")
    assert store.steps() == [] and store.newest() == 0
    for step in (10, 20, 30):
        store.save(step, state(step))
    assert store.steps() == [10, 20, 30] and store.newest() == 30
    assert store.path(30).name == "step-00000030.pt"
    loaded = store.load(20, torch.device("cpu"))
    assert loaded["step"] == 20 and torch.equal(loaded["weights"], torch.full((3,), 20.0))
    assert [p.name for p in (tmp_path / "job").iterdir() if p.name.startswith(".")] == []


def test_prune_keeps_the_last_saves(tmp_path):
    store = CheckpointStore(tmp_path)
    for step in range(5, 30, 5):
        store.save(step, state(step))
    store.prune()
    assert KEEP == 2 and store.steps() == [20, 25]


def test_a_failed_save_leaves_the_previous_checkpoint_and_no_temp_file(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save(10, state(10))
    with pytest.raises(Exception):  # noqa: B017 (whatever pickle raises)
        store.save(20, {"unpicklable": lambda: None})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000010.pt"]
    assert store.load(10, torch.device("cpu"))["step"] == 10


def test_a_writer_killed_mid_save_leaves_a_temp_file_that_the_next_start_removes(tmp_path):
    # A real process dies between writing and renaming: its temp file stays behind.
    script = (
        "import os, sys, torch\n"
        "from trainer import checkpoint\n"
        "checkpoint.os.replace = lambda *a: os._exit(9)\n"
        "checkpoint.CheckpointStore(sys.argv[1]).save(40, {'x': torch.ones(2)})\n"
    )
    died = subprocess.run([sys.executable, "-c", script, str(tmp_path)], timeout=60)
    assert died.returncode == 9
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1
    store = CheckpointStore(tmp_path)
    assert store.steps() == []  # never mistaken for a checkpoint
    live = tmp_path / f".tmp-{os.getpid()}-inflight"  # a writer that is still alive
    live.write_bytes(b"")
    store.remove_stale_temp_files()
    assert [p.name for p in tmp_path.iterdir()] == [live.name]


def test_full_fsync_asks_macos_for_f_fullfsync(monkeypatch):
    calls = []
    monkeypatch.setattr(checkpoint.fcntl, "F_FULLFSYNC", 51, raising=False)
    monkeypatch.setattr(checkpoint.fcntl, "fcntl", lambda fd, cmd: calls.append((fd, cmd)))
    monkeypatch.setattr(checkpoint.os, "fsync", lambda fd: calls.append((fd, "fsync")))
    checkpoint.full_fsync(7)
    assert calls == [(7, 51)]  # macOS: F_FULLFSYNC (51 in <sys/fcntl.h>), not fsync


def test_full_fsync_is_plain_fsync_elsewhere(monkeypatch):
    calls = []
    monkeypatch.delattr(checkpoint.fcntl, "F_FULLFSYNC", raising=False)
    monkeypatch.setattr(checkpoint.os, "fsync", lambda fd: calls.append(fd))
    checkpoint.full_fsync(7)
    assert calls == [7]


def test_save_syncs_the_file_and_its_folder(tmp_path, monkeypatch):
    synced = []
    real = checkpoint.full_fsync
    monkeypatch.setattr(checkpoint, "full_fsync", lambda fd: (synced.append(fd), real(fd)))
    CheckpointStore(tmp_path).save(5, state(5))
    assert len(synced) == 2  # the temp file before the rename, the folder after it
