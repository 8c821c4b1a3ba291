"""Helpers shared by every test folder: free ports, readiness waits, required tools."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from minicluster.demo.ports import free_port_block

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
# The committed example: every test and committed rendering reads it, never the user's
# config.yaml (which `make config` creates and git ignores).
EXAMPLE_CONFIG = REPO / "config.example.yaml"

# Waits scale by this factor (MINICLUSTER_TEST_TIME_FACTOR): a wait ends as soon as its
# condition holds, so a generous deadline costs nothing when things work and holds on a
# machine busy with another suite. The default doubles every deadline a test names.
TIME_FACTOR_ENV = "MINICLUSTER_TEST_TIME_FACTOR"
DEFAULT_TIME_FACTOR = 2.0


def time_factor() -> float:
    raw = os.environ.get(TIME_FACTOR_ENV, "")
    if not raw:
        return DEFAULT_TIME_FACTOR
    try:
        factor = float(raw)
    except ValueError:
        factor = 0.0
    if factor <= 0:
        pytest.fail(f"{TIME_FACTOR_ENV}={raw!r}: must be a positive number, e.g. 3")
    return factor


def deadline(seconds: float) -> float:
    """How long to wait for something a quiet machine does in about `seconds`."""
    return seconds * time_factor()


def git(*args: str) -> list[str]:
    """A git command line on this checkout, also for a user who does not own it (git
    refuses a repository of another owner unless it is named safe)."""
    return ["git", "-c", f"safe.directory={REPO}", "-C", str(REPO), *args]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now, outside the kernel's ephemeral range."""
    return free_port_block(1, host)


# Lines of a job's output that say why it stopped; a failed job ends in the tracebacks
# of the nodes it stopped, which hide the first cause in the output's tail.
_CAUSE_MARKERS = ("stopping the job", "exited with status", "Error", "error:", "failed")


def job_failure(result) -> str:
    """A failed CLI run's message: the lines naming the cause, then the output's end."""
    lines = (result.stdout + result.stderr).splitlines()
    causes = [line for line in lines if any(m in line for m in _CAUSE_MARKERS)][:25]
    return "\n".join(["-- cause lines --", *causes, "-- end of output --", *lines[-30:]])


def wait_until(
    probe: Callable[[], T], what: str, timeout: float = 30.0, interval: float = 0.1
) -> T:
    """Poll `probe` until it returns a truthy value; fail the test naming `what` otherwise.

    `timeout` is what a quiet machine needs; the wait lasts `deadline(timeout)`.
    Exceptions from the probe count as "not yet" (a server that is still starting).
    """
    limit = deadline(timeout)
    ends = time.monotonic() + limit
    last_error: Exception | None = None
    while time.monotonic() < ends:
        try:
            result = probe()
        except Exception as exc:  # any failure means "not ready yet"
            last_error = exc
        else:
            if result:
                return result
        time.sleep(interval)
    detail = f" (last error: {last_error!r})" if last_error else ""
    pytest.fail(f"timed out after {limit:.0f}s waiting for {what}{detail}")


def require_tool(name: str, how: str) -> str:
    """The absolute path of a tool the test needs, or a failure saying how to get it."""
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} is not installed; {how}")
    return path


def as_foreground_job() -> None:
    """`preexec_fn` for a child that must take Ctrl-C as a terminal's foreground job does.

    A script that starts the test run in the background (`cmd &`) leaves SIGINT ignored,
    and an ignored signal stays ignored across fork and exec.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def without_outer_make(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment minus what an enclosing `make test` passes to a nested make."""
    env = dict(os.environ if env is None else env)
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(name, None)
    return env
