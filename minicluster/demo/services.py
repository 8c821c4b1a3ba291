"""The demo's record of what it started: <state>/demo/services.json.

`minicluster demo --stop` (make demo-stop) stops exactly the processes listed there, each
by PID, and only if the process with that PID is still the one the demo started (same
start time): a PID reused by an unrelated process since is left alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from minicluster.core.logformat import now_iso
from minicluster.launcher import reap

RECORD = "services.json"
# Two process start times within this are the same process (psutil rounds them).
SAME_START_SECONDS = 0.05


@dataclass
class ServiceEntry:
    name: str
    pid: int
    create_time: float
    url: str
    log: str


@dataclass
class StackRecord:
    config_file: str
    started_at: str
    services: list[ServiceEntry] = field(default_factory=list)
    stopped_at: str | None = None

    @property
    def running(self) -> bool:
        return self.stopped_at is None


def entry_for(name: str, pid: int, url: str, log: Path) -> ServiceEntry:
    return ServiceEntry(name, pid, psutil.Process(pid).create_time(), url, str(log))


def is_alive(entry: ServiceEntry) -> bool:
    """The very process the demo started is still running."""
    try:
        process = psutil.Process(entry.pid)
        same = abs(process.create_time() - entry.create_time) < SAME_START_SECONDS
        return same and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def record_path(state_dir: Path) -> Path:
    return state_dir / "demo" / RECORD


def save(state_dir: Path, record: StackRecord) -> Path:
    path = record_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def load(state_dir: Path) -> StackRecord | None:
    path = record_path(state_dir)
    try:
        data = json.loads(path.read_text())
        services = [ServiceEntry(**s) for s in data.pop("services", [])]
        return StackRecord(services=services, **data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: unreadable demo record ({exc})") from None


def stop_services(state_dir: Path, record: StackRecord, grace: float = 10.0) -> list[str]:
    """Stop every listed process that is still the one started (newest first); mark the
    record stopped. Returns one line per service."""
    lines = []
    for entry in reversed(record.services):
        if not is_alive(entry):
            lines.append(f"{entry.name}: PID {entry.pid} already gone")
            continue
        report = reap.stop_tree(entry.pid, grace)
        if report.survivors:
            lines.append(f"{entry.name}: PID {entry.pid} STILL RUNNING: {report.survivors}")
        else:
            lines.append(f"{entry.name}: stopped PID {entry.pid}")
    record.stopped_at = now_iso()
    save(state_dir, record)
    return lines
