"""A fresh process-wide tracker and unpatched torch.distributed around every test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import torch.distributed as dist

from minicluster.track import collectives, comm, tracker
from minicluster.track.settings import TrackSettings


@pytest.fixture(autouse=True)
def fresh_tracker() -> Iterator[None]:
    yield
    current = tracker.current()
    if current is not None:
        current.linger_seconds = 0
        current.close(ok=False)
    tracker._current = None
    collectives.uninstall()
    collectives.STATS.__init__()
    comm.unpatch_ddp()


def settings(tmp_path: Path | None = None, **overrides) -> TrackSettings:
    values = {"job_id": "j1", "node": "n1", "metrics_port": None, "log_interval": 2}
    if tmp_path is not None:
        values["log_dir"] = tmp_path / "logs" / "j1"
    values.update(overrides)
    return TrackSettings(**values)


@pytest.fixture
def group() -> Iterator[None]:
    """A one-process gloo group: enough for counting what goes through it."""
    dist.init_process_group(
        "gloo", store=dist.HashStore(), rank=0, world_size=1, timeout=timedelta(seconds=30)
    )
    yield
    dist.destroy_process_group()
