"""A rank's log lines: on stdout, and in `<log_dir>/<job_id>/rank<rank>.log` when known.

torchrun's --redirects/--tee do not work on macOS, so the rank writes its own file. Lines
follow minicluster.core.logformat (ISO-8601 UTC with milliseconds, node, rank, level, then
a message word and key=value fields). The file is appended to, so a restarted rank's
lines follow the failed attempt's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from minicluster.core.logformat import format_line


def format_fields(word: str, **fields: object) -> str:
    """`word k=v ...`; floats get 6 significant digits, values must not contain spaces."""
    parts = [word]
    for key, value in fields.items():
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def compact_json(data: object) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=False)


class RankLog:
    def __init__(self, directory: Path | None, node: str, rank: int, stdout: TextIO | None = None):
        self.node, self.rank = node, rank
        self.stdout = stdout or sys.stdout
        self.path: Path | None = None
        self._file: TextIO | None = None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self.path = directory / f"rank{rank}.log"
            self._file = open(self.path, "a", buffering=1)  # noqa: SIM115 (kept open)

    def write(self, level: str, message: str) -> None:
        line = format_line(self.node, self.rank, level, message) + "\n"
        if self._file is not None:
            self._file.write(line)
        try:
            self.stdout.write(line)
            self.stdout.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stdout must not fail the rank

    def info(self, word: str, **fields: object) -> None:
        self.write("INFO", format_fields(word, **fields))

    def warning(self, word: str, **fields: object) -> None:
        self.write("WARNING", format_fields(word, **fields))

    def error(self, word: str, **fields: object) -> None:
        self.write("ERROR", format_fields(word, **fields))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
