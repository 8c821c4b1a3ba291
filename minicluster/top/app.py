"""The refresh loop: a background thread asks Prometheus every interval while the main
thread redraws (on new figures and on a terminal resize) and reads keys in cbreak mode,
so `q` answers at once even while Prometheus is slow to answer."""

from __future__ import annotations

import contextlib
import os
import queue
import select
import sys
import termios
import threading
import tty
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.live import Live

from minicluster.core.promapi import PrometheusUnreachable, QueryFailed
from minicluster.top.queries import Snapshot
from minicluster.top.view import render

Fetch = Callable[[], Snapshot]
KEY_POLL_SECONDS = 0.1
QUIT_KEYS = (b"q", b"Q")


def once(fetch: Fetch, url: str, console: Console, errors: Console) -> int:
    """One frame on stdout; exit 1 with one line on stderr when Prometheus does not answer."""
    try:
        snapshot = fetch()
    except (PrometheusUnreachable, QueryFailed) as exc:
        errors.print(f"minicluster top: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 1
    console.print(render(snapshot, url=url, width=console.width))
    return 0


@contextlib.contextmanager
def _cbreak(fd: int | None) -> Iterator[None]:
    """Keys arrive one at a time without Enter and without echo; restored on the way out."""
    if fd is None:
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _poll(fetch: Fetch, interval: float, out: queue.Queue, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            out.put((fetch(), None))
        except (PrometheusUnreachable, QueryFailed) as exc:
            out.put((None, str(exc)))
        stop.wait(interval)


def live(fetch: Fetch, url: str, interval: float, console: Console) -> int:
    """Full-screen view until `q` (or Ctrl-C)."""
    fd: int | None = sys.stdin.fileno() if sys.stdin and sys.stdin.isatty() else None
    updates: queue.Queue = queue.Queue()
    stop = threading.Event()
    poller = threading.Thread(target=_poll, args=(fetch, interval, updates, stop), daemon=True)
    snapshot: Snapshot | None = None
    error: str | None = "waiting for the first answer from Prometheus"
    drawn_for = None
    try:
        with _cbreak(fd), Live(console=console, screen=True, auto_refresh=False) as screen:
            poller.start()
            while True:
                while not updates.empty():
                    fresh, error = updates.get_nowait()
                    snapshot = fresh or snapshot
                    drawn_for = None
                size = console.size
                if drawn_for != size:
                    frame = render(
                        snapshot,
                        url=url,
                        height=size.height,
                        width=size.width,
                        interval=interval,
                        error=error,
                    )
                    screen.update(frame, refresh=True)
                    drawn_for = size
                if fd is None:
                    stop.wait(KEY_POLL_SECONDS)
                    continue
                ready, _, _ = select.select([fd], [], [], KEY_POLL_SECONDS)
                if ready:
                    keys = os.read(fd, 64)
                    if not keys:
                        fd = None  # stdin closed: keep drawing, Ctrl-C still quits
                    elif any(key in keys for key in QUIT_KEYS):
                        return 0
    finally:
        stop.set()
