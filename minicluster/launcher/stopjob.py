"""Stop a job on every node by the torchrun PIDs runs/<job_id>.json recorded.

Each PID is stopped as a process tree (reap.py): on a loopback node here, on any other node
over ssh with the node venv's `python -m minicluster.launcher.reap --expect JOB_ID PID`,
which refuses a PID whose command line does not name the job (it was reused).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from minicluster.core.config import Config, NodeSettings
from minicluster.launcher import reap
from minicluster.launcher.remote import LauncherError, SshSettings, describe, describe_remote


class StopError(Exception):
    """No record to stop the job by; one line."""


@dataclass(frozen=True)
class NodeStop:
    node: str
    message: str
    clean: bool  # nothing of the job is left running there


def recorded_pids(runs_dir: Path, job_id: str) -> dict[str, int]:
    path = runs_dir / f"{job_id}.json"
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise StopError(f"{path}: no such job record (job ids: the names in {runs_dir}/)") from None
    except ValueError as exc:
        raise StopError(f"{path}: not a job record: {exc}") from None
    pids = record.get("pids") or {}
    if not pids:
        raise StopError(f"{path}: records no PIDs (the job never started on a node)")
    return {str(name): int(pid) for name, pid in pids.items()}


def stop_on_node(
    node: NodeSettings, pid: int, job_id: str, ssh: SshSettings, grace: float
) -> NodeStop:
    if node.is_loopback:
        report = reap.stop_tree(pid, grace, expect=job_id)
        return NodeStop(node.name, describe(node.name, report), not report.survivors)
    command = [node.venv_python, "-m", "minicluster.launcher.reap"]
    command += ["--grace", str(grace), "--expect", job_id, str(pid)]
    try:
        result = ssh.run(node, command, timeout=grace + ssh.connect_timeout + 15)
    except LauncherError as exc:
        return NodeStop(node.name, f"{exc}; PID {pid} not stopped", False)
    message = describe_remote(node.name, pid, result)
    return NodeStop(node.name, message, result.returncode == 0)


def stop_job(
    config: Config, runs_dir: Path, job_id: str, ssh: SshSettings, grace: float = 5.0
) -> list[NodeStop]:
    pids = recorded_pids(runs_dir, job_id)
    unknown = sorted(set(pids) - {n.name for n in config.nodes})
    if unknown:
        raise StopError(f"job {job_id} ran on {', '.join(unknown)}, which the config does not list")
    targets = [(config.node(name), pid) for name, pid in pids.items()]
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        return list(pool.map(lambda t: stop_on_node(t[0], t[1], job_id, ssh, grace), targets))
