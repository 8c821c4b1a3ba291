"""One merged, time-ordered log from the output of every node.

Rank lines (minicluster.core.logformat) already carry their time, node and rank and are kept
verbatim. Anything else a node prints (torchrun's own messages, a traceback) is stamped
with the time it arrived here and its node, as `<time> <node> torchrun <text>`.

While a job runs, lines are written once they are older than a short reorder window, so
`tail -f` shows them nearly in order and a crash of the launcher keeps what was seen; at
the end the whole file is rewritten in exact order (lines from a node whose clock runs
ahead may have arrived after the window).
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from minicluster.core.logformat import LogLine, now_iso, parse_line

# Marks lines that came from a node's torchrun (or its workers' stderr), not a rank log.
PROCESS_TAG = "torchrun"


@dataclass(frozen=True, order=True)
class MergedLine:
    time: str  # ISO-8601 UTC with milliseconds: sorts as a string
    seq: int  # arrival order, keeps ties (and continuation lines) in place
    text: str = field(compare=False)
    node: str = field(compare=False)
    parsed: LogLine | None = field(compare=False, default=None)

    @property
    def rank(self) -> int | None:
        return self.parsed.rank if self.parsed else None

    @property
    def timestamp(self) -> float:
        return self.parsed.timestamp if self.parsed else parse_time(self.time)


def parse_time(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


_SEQ = itertools.count()


def tag_line(node: str, text: str, arrival: float) -> MergedLine:
    """A line as a node printed it, with its place in the merged order."""
    parsed = parse_line(text)
    if parsed is not None:
        return MergedLine(parsed.time, next(_SEQ), str(parsed), parsed.node, parsed)
    stamp = now_iso(arrival)
    return MergedLine(stamp, next(_SEQ), f"{stamp} {node} {PROCESS_TAG} {text}", node)


def read_rank_file(path: Path) -> list[MergedLine]:
    """A rank's own log file; a line not in the format (a traceback) keeps its predecessor's
    time so it stays with it."""
    lines: list[MergedLine] = []
    previous: LogLine | None = None
    for text in path.read_text(errors="replace").splitlines():
        parsed = parse_line(text)
        if parsed is not None:
            previous = parsed
            lines.append(MergedLine(parsed.time, next(_SEQ), str(parsed), parsed.node, parsed))
        elif previous is not None and text.strip():
            prefix = f"{previous.time} {previous.node} rank={previous.rank}"
            lines.append(MergedLine(previous.time, next(_SEQ), f"{prefix} | {text}", previous.node))
    return lines


def read_merged_file(path: Path) -> list[MergedLine]:
    """A merged log written earlier (keeps the torchrun lines that no rank file has)."""
    lines = []
    for text in path.read_text(errors="replace").splitlines():
        parsed = parse_line(text)
        time, node, *_ = [*text.split(" ", 2), "", ""]
        lines.append(MergedLine(time, next(_SEQ), text, parsed.node if parsed else node, parsed))
    return lines


def write_sorted(path: Path, lines: Iterable[MergedLine]) -> None:
    """Atomically replace `path` with `lines` in time order."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as out:
        for line in sorted(lines):
            out.write(line.text + "\n")
    os.replace(tmp, path)


class MergedLog:
    """The job's merged log file, written as lines come in and sorted once at the end."""

    def __init__(self, path: Path, window_seconds: float = 2.0) -> None:
        self.path = path
        self.window = window_seconds
        self.lines: list[MergedLine] = []
        self._pending: list[MergedLine] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out = path.open("w")

    def add(self, line: MergedLine) -> None:
        self.lines.append(line)
        heapq.heappush(self._pending, line)

    def flush(self, now: float) -> None:
        """Write the lines older than the reorder window."""
        cutoff = now_iso(now - self.window)
        while self._pending and self._pending[0].time <= cutoff:
            self._out.write(heapq.heappop(self._pending).text + "\n")
        self._out.flush()

    def close(self) -> None:
        if self._out.closed:
            return
        self._out.close()
        write_sorted(self.path, self.lines)
        self._pending.clear()
