"""Checkpoints on every node, written atomically, and agreeing on where to resume.

The Minis share no filesystem, so local rank 0 of every node writes the same checkpoint
into its own folder: a temp file, fsync, rename, fsync of the folder, so a crash leaves
either the old or the new file and never half of one. After a restart the ranks take the
newest step that every node has: all ranks all-reduce MIN of their node's newest step.
Nodes save at the same steps, so a node can be at most one save ahead (it finished a save
the other did not); keeping the last KEEP saves guarantees it still has the agreed one.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import psutil
import torch
import torch.distributed as dist

KEEP = 2
_NAME = re.compile(r"^step-(\d{8})\.pt$")
_TEMP_PREFIX = ".tmp-"


def full_fsync(fd: int) -> None:
    """Flush a file to stable storage.

    On macOS fsync() only reaches the drive's cache; F_FULLFSYNC asks the drive to write
    it out (Apple's fsync(2) man page). Linux has no F_FULLFSYNC and fsync() suffices.
    """
    if hasattr(fcntl, "F_FULLFSYNC"):
        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
    else:
        os.fsync(fd)


class CheckpointStore:
    """The checkpoints of one job on this node: `<dir>/step-00000050.pt`."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def path(self, step: int) -> Path:
        return self.directory / f"step-{step:08d}.pt"

    def steps(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        found = (_NAME.match(p.name) for p in self.directory.iterdir())
        return sorted(int(m[1]) for m in found if m)

    def newest(self) -> int:
        """The newest saved step, 0 when there is none."""
        steps = self.steps()
        return steps[-1] if steps else 0

    def save(self, step: int, state: dict) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.directory, prefix=f"{_TEMP_PREFIX}{os.getpid()}-")
        try:
            with os.fdopen(fd, "wb") as out:
                torch.save(state, out)
                out.flush()
                full_fsync(out.fileno())
            final = self.path(step)
            os.replace(temp, final)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        folder = os.open(self.directory, os.O_RDONLY)
        try:
            full_fsync(folder)  # makes the rename itself durable
        finally:
            os.close(folder)
        return final

    def load(self, step: int, device: torch.device) -> dict:
        return torch.load(self.path(step), map_location=device, weights_only=True)

    def prune(self, keep: int = KEEP) -> None:
        for step in self.steps()[:-keep]:
            self.path(step).unlink(missing_ok=True)

    def prune_old_jobs(self, max_age_days: float, now: float | None = None) -> list[Path]:
        """Remove other jobs' checkpoint folders whose newest file is older than
        `max_age_days`. A folder holding anything but checkpoints is left alone."""
        limit = (time.time() if now is None else now) - max_age_days * 86400
        removed = []
        parent = self.directory.parent
        for folder in parent.iterdir() if parent.is_dir() else ():
            if folder == self.directory or folder.is_symlink() or not folder.is_dir():
                continue
            files = list(folder.iterdir())
            ours = all(_NAME.match(f.name) or f.name.startswith(_TEMP_PREFIX) for f in files)
            newest = max((f.stat().st_mtime for f in files), default=folder.stat().st_mtime)
            if ours and newest < limit:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        return removed

    def remove_stale_temp_files(self) -> None:
        """Temp files of writers that died mid-save (their pid is in the name)."""
        if not self.directory.is_dir():
            return
        for path in self.directory.glob(f"{_TEMP_PREFIX}*"):
            pid = path.name[len(_TEMP_PREFIX) :].split("-", 1)[0]
            if pid.isdigit() and not psutil.pid_exists(int(pid)):
                path.unlink(missing_ok=True)


def agree_on_resume_step(store: CheckpointStore, device: torch.device) -> int:
    """The newest step every node has (0: start fresh). A collective: all ranks call it."""
    newest = torch.tensor([store.newest()], dtype=torch.int64, device=device)
    dist.all_reduce(newest, op=dist.ReduceOp.MIN)
    step = int(newest.item())
    if step == 0:
        return 0
    have = torch.tensor([int(store.path(step).is_file())], dtype=torch.int64, device=device)
    dist.all_reduce(have, op=dist.ReduceOp.MIN)
    if not have.item():
        raise RuntimeError(
            f"checkpoint step {step} is missing on some node; delete the job's checkpoint "
            "folders on all nodes to start over"
        )
    return step


def gather_counters(values: dict[str, float], device: torch.device) -> list[dict[str, float]]:
    """Every rank's counters, indexed by rank, so each node's checkpoint holds them all."""
    names = list(values)
    mine = torch.tensor([float(values[n]) for n in names], dtype=torch.float64, device=device)
    everyone = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, mine)
    return [dict(zip(names, row.tolist(), strict=True)) for row in everyone]
