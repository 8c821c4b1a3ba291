"""Helpers shared by every test folder: free ports, readiness waits, required tools."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until(
    probe: Callable[[], T], what: str, timeout: float = 30.0, interval: float = 0.1
) -> T:
    """Poll `probe` until it returns a truthy value; fail the test naming `what` otherwise.

    Exceptions from the probe count as "not yet" (a server that is still starting).
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()
        except Exception as exc:  # any failure means "not ready yet"
            last_error = exc
        else:
            if result:
                return result
        time.sleep(interval)
    detail = f" (last error: {last_error!r})" if last_error else ""
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{detail}")


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
