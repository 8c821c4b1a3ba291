"""The one log-line format every rank writes and the launcher merges.

    2026-11-28T15:40:01.123+00:00 mini-1 rank=0 INFO step step=10 target=200 loss=2.3102

Time is ISO-8601 in UTC with milliseconds, then the node, the rank, the level, a message
word and optional key=value fields. Lines sort by time as plain strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00) (?P<node>\S+) rank=(?P<rank>\d+) "
    r"(?P<level>[A-Z]+) (?P<message>.*)$"
)


@dataclass(frozen=True)
class LogLine:
    time: str
    node: str
    rank: int
    level: str
    message: str

    @property
    def timestamp(self) -> float:
        return datetime.fromisoformat(self.time).timestamp()

    def __str__(self) -> str:
        return f"{self.time} {self.node} rank={self.rank} {self.level} {self.message}"

    def fields(self) -> dict[str, str]:
        """The key=value pairs of the message (values without spaces)."""
        return dict(token.split("=", 1) for token in self.message.split(" ")[1:] if "=" in token)


def now_iso(ts: float | None = None) -> str:
    moment = datetime.fromtimestamp(ts, UTC) if ts is not None else datetime.now(UTC)
    return moment.isoformat(timespec="milliseconds")


def format_line(node: str, rank: int, level: str, message: str, ts: float | None = None) -> str:
    return str(LogLine(now_iso(ts), node, rank, level, message))


def parse_line(text: str) -> LogLine | None:
    match = _LINE.match(text.rstrip("\n"))
    if not match:
        return None
    return LogLine(
        match["time"], match["node"], int(match["rank"]), match["level"], match["message"]
    )
