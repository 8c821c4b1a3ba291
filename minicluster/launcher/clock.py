"""Clock offsets between nodes, and whether they are large enough to reorder merged lines.

Each node stamps its log lines with its own clock, so the merged order is only as good as
the clocks agree. The offset of a node is measured as NTP does: several request/answer
exchanges over one ssh session, each giving `remote time - midpoint of send and receive`;
the exchange with the shortest round trip is the most accurate. (`date +%s.%N` does not
work on macOS, whose BSD date has no %N, so the node's venv python answers instead:
`python -m minicluster.launcher.clock` echoes its time.time() for each line it reads.)
"""

from __future__ import annotations

import itertools
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from minicluster.core.config import NodeSettings
from minicluster.launcher.remote import LauncherError, SshSettings
from minicluster.launcher.stream import MergedLine

# Log lines carry milliseconds (minicluster.core.logformat).
LINE_RESOLUTION_SECONDS = 0.001


@dataclass(frozen=True)
class Offset:
    node: str
    seconds: float  # the node's clock minus this machine's clock
    rtt: float  # round trip of the exchange the estimate comes from


def best_estimate(exchanges: list[tuple[float, float, float]]) -> tuple[float, float]:
    """(sent, remote time, received) triples -> (offset, round trip) of the shortest one."""
    sent, remote, received = min(exchanges, key=lambda e: e[2] - e[0])
    return remote - (sent + received) / 2, received - sent


def measure(node: NodeSettings, ssh: SshSettings, exchanges: int = 8) -> Offset:
    if node.is_loopback:
        return Offset(node.name, 0.0, 0.0)
    command = shlex.join([node.venv_python, "-m", "minicluster.launcher.clock"])
    proc = subprocess.Popen(
        ssh.argv(node, command),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )
    samples = []
    # A node that stops answering mid-exchange must not hang the launcher.
    watchdog = threading.Timer(ssh.connect_timeout + 10, proc.kill)
    watchdog.start()
    try:
        assert proc.stdin and proc.stdout
        for _ in range(exchanges):
            sent = time.time()
            proc.stdin.write("t\n")
            proc.stdin.flush()
            answer = proc.stdout.readline()
            received = time.time()
            if not answer:
                break
            samples.append((sent, float(answer), received))
    except (OSError, ValueError):
        pass
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait()
    if not samples:
        raise LauncherError(f"{node.name}: could not read its clock over ssh")
    offset, rtt = best_estimate(samples)
    return Offset(node.name, offset, rtt)


def reordered_pairs(lines: list[MergedLine], offsets: dict[str, float]) -> int:
    """How many neighbouring lines from different nodes would swap places if each node's
    times were corrected by its offset."""
    ordered = sorted(lines)
    count = 0
    for before, after in itertools.pairwise(ordered):
        if before.node == after.node:
            continue
        corrected_before = before.timestamp - offsets.get(before.node, 0.0)
        corrected_after = after.timestamp - offsets.get(after.node, 0.0)
        if corrected_before > corrected_after:
            count += 1
    return count


def offset_note(lines: list[MergedLine], offsets: list[Offset]) -> str | None:
    """A note for the user when the offsets are large enough to misorder the merged log."""
    # An offset inside the measurement's own error (half its round trip) or below the
    # lines' millisecond resolution says nothing about their order.
    by_node = {
        o.node: o.seconds if abs(o.seconds) > max(o.rtt / 2, LINE_RESOLUTION_SECONDS) else 0.0
        for o in offsets
    }
    pairs = reordered_pairs(lines, by_node)
    if not pairs:
        return None
    spread = ", ".join(f"{o.node} {o.seconds * 1000:+.1f} ms" for o in offsets)
    return (
        f"clock offsets against this machine: {spread}; {pairs} neighbouring lines from "
        "different nodes may be out of order (each line keeps its own node's time)"
    )


def echo_clock() -> int:
    """The node side of `measure`: answer every line on stdin with this clock's time."""
    for _ in sys.stdin:
        print(repr(time.time()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(echo_clock())
