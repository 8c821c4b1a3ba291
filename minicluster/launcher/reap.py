"""Stop one process tree by its root PID: SIGTERM the root, then SIGKILL what is left.

torchrun starts every worker in a session of its own, so a signal to torchrun's process
group never reaches the workers; and a torchrun killed hard orphans them. The tree is
therefore read (psutil) before any signal is sent, and every process in it is followed by
PID. The root gets SIGTERM first because torchrun handles it by stopping its workers.

Run on a node over ssh as `<venv python> -m minicluster.launcher.reap --expect JOB PID`;
`--expect` refuses a PID whose command line does not name the job (the PID was reused).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
from dataclasses import asdict, dataclass, field

import psutil


@dataclass
class StopReport:
    pid: int
    found: bool = False
    terminated: list[int] = field(default_factory=list)  # exited after SIGTERM
    killed: list[int] = field(default_factory=list)  # needed SIGKILL
    survivors: list[int] = field(default_factory=list)  # still alive afterwards


def _tree(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return [process]


def _running(process: psutil.Process) -> bool:
    """Alive and not a zombie. A zombie has exited; one of ours is reaped here, one of
    another parent's (sshd's, on a node) is that parent's to reap."""
    try:
        if process.status() == psutil.STATUS_ZOMBIE:
            with contextlib.suppress(psutil.Error, OSError):
                process.wait(0)
            return False
        return process.is_running()
    except psutil.Error:
        return False


def _wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to `timeout` for the processes to exit; returns those still running."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in processes if _running(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def _signal(processes: list[psutil.Process], sig: int) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):  # already gone
            process.send_signal(sig)


def stop_tree(pid: int, grace: float = 5.0, expect: str | None = None) -> StopReport:
    report = StopReport(pid)
    try:
        root = psutil.Process(pid)
        if expect is not None and expect not in " ".join(root.cmdline()):
            return report
    except psutil.Error:
        return report
    report.found = True
    tree = _tree(root)
    _signal([root], signal.SIGTERM)
    alive = _wait_gone(tree, grace)
    report.terminated = [p.pid for p in tree if p not in alive]
    if alive:
        # Children started since the first look (a restart in progress) go too.
        late = {p.pid: p for p in alive}
        for process in alive:
            late.update({c.pid: c for c in _tree(process)})
        _signal(list(late.values()), signal.SIGKILL)
        still = _wait_gone(list(late.values()), 5)
        report.killed = [pid for pid, p in late.items() if p not in still]
        report.survivors = [p.pid for p in still]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minicluster.launcher.reap")
    parser.add_argument("pid", type=int)
    parser.add_argument("--grace", type=float, default=5.0, help="seconds from SIGTERM to KILL")
    parser.add_argument("--expect", help="text the root's command line must contain")
    args = parser.parse_args(argv)
    report = stop_tree(args.pid, args.grace, args.expect)
    print(json.dumps(asdict(report)))
    return 1 if report.survivors else 0


if __name__ == "__main__":
    sys.exit(main())
