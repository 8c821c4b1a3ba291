"""Trainer discovery files: how a rank tells its node's exporter where to scrape it.

A rank writes one JSON file into its node's run directory when its metrics endpoint is up
and removes it at exit. The exporter serves the live ones at `/sd` in Prometheus' HTTP
service-discovery format. The format is documented in docs/discovery.md.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

SUFFIX = ".rank.json"


@dataclass(frozen=True)
class RankEntry:
    job_id: str
    rank: int
    local_rank: int
    node: str
    target: str  # host:port of the rank's /metrics
    pid: int

    @property
    def filename(self) -> str:
        return f"{self.job_id}-rank{self.rank}{SUFFIX}"


def register(run_dir: str | Path, entry: RankEntry) -> Path:
    """Write the entry atomically (temp file, rename) so the exporter never reads half."""
    directory = Path(run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / entry.filename
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(entry), out)
    os.replace(tmp, final)
    return final


def unregister(path: str | Path) -> None:
    Path(path).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def live_entries(run_dir: str | Path) -> list[RankEntry]:
    """Entries whose process still runs; files of dead processes are removed."""
    directory = Path(run_dir)
    if not directory.is_dir():
        return []
    entries = []
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        try:
            entry = RankEntry(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue  # unreadable or foreign file: not ours to delete
        if _alive(entry.pid):
            entries.append(entry)
        else:
            unregister(path)
    return entries


def http_sd(entries: list[RankEntry]) -> list[dict]:
    """Prometheus http_sd_configs body: one target group per rank."""
    return [
        {
            "targets": [entry.target],
            "labels": {
                "job_id": entry.job_id,
                "rank": str(entry.rank),
                "local_rank": str(entry.local_rank),
                "node": entry.node,
            },
        }
        for entry in entries
    ]
