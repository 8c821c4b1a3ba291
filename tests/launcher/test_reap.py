"""Stopping a process tree by PID, including a child in its own session that ignores SIGTERM
(what torchrun's workers look like to a signal sent to torchrun's group)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import psutil

from minicluster.launcher.reap import stop_tree
from tests.support import wait_until

# A parent that starts a stubborn child in a new session, then waits.
TREE = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"],
        start_new_session=True)
    print(child.pid, flush=True)
    time.sleep(600)
    """
)


def _start_tree(tag: str) -> tuple[subprocess.Popen, int]:
    parent = subprocess.Popen([sys.executable, "-c", TREE, tag], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    return parent, child


def test_the_root_gets_sigterm_and_the_stubborn_child_sigkill():
    parent, child = _start_tree("reap-test")
    wait_until(lambda: psutil.pid_exists(child), "the child")
    report = stop_tree(parent.pid, grace=1.0, expect="reap-test")
    assert report.found
    assert parent.pid in report.terminated
    assert child in report.killed
    assert report.survivors == []
    parent.wait(timeout=5)
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"


def test_a_pid_that_is_not_the_jobs_is_left_alone():
    parent, child = _start_tree("someone-else")
    try:
        report = stop_tree(parent.pid, grace=1.0, expect="reap-test")
        assert not report.found
        assert parent.poll() is None and psutil.pid_exists(child)
    finally:
        stop_tree(parent.pid, grace=1.0)
        parent.wait(timeout=5)


def test_the_command_line_form_reports_json(tmp_path):
    parent, child = _start_tree("cli-form")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "minicluster.launcher.reap",
            "--grace",
            "1",
            "--expect",
            "cli-form",
            str(parent.pid),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f'"killed": [{child}]' in out.stdout
    parent.wait(timeout=5)
