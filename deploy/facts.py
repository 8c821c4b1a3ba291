"""pyinfra facts the deploy reads before deciding what to change on a node.

Each fact's command exits 0 whatever it finds (pyinfra fails the host on a failing fact
command) and works on macOS and Linux: `shasum -a 256` is macOS's, `sha256sum` Linux's.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pyinfra.api import FactBase

_SHA256 = '(sha256sum "$f" 2>/dev/null || shasum -a 256 "$f")'


@dataclass(frozen=True)
class LaunchdJob:
    """What `launchctl print system/<label>` says about a loaded job."""

    label: str
    running: bool
    pid: int | None
    path: str | None  # the plist it was loaded from


def parse_launchctl_print(label: str, lines: list[str]) -> LaunchdJob | None:
    """Parse `launchctl print` output (macOS 13+ layout); None when nothing was printed."""
    if not lines:
        return None
    fields: dict[str, str] = {}
    depth = 0
    for line in lines:
        text = line.strip()
        if text.endswith("{"):
            depth += 1
            continue
        if text == "}":
            depth -= 1
            continue
        key, sep, value = text.partition(" = ")
        if sep and depth == 1:  # the job's own keys, not nested dictionaries'
            fields.setdefault(key, value)
    pid = int(fields["pid"]) if fields.get("pid", "").isdigit() else None
    return LaunchdJob(
        label=label, running=fields.get("state") == "running", pid=pid, path=fields.get("path")
    )


class LaunchdService(FactBase[LaunchdJob | None]):
    """The loaded system-domain job `label`, or None when launchd does not know it."""

    def command(self, label: str) -> str:
        return f"launchctl print system/{label} 2>/dev/null || true"

    def process(self, output: list[str]) -> LaunchdJob | None:  # type: ignore[override]
        label = output[0].split(" = ", 1)[0].removeprefix("system/") if output else ""
        return parse_launchctl_print(label, output)

    def default(self) -> None:  # type: ignore[override]
        return None


class TreeDigest(FactBase[dict[str, str]]):
    """sha256 of every file below `path`, keyed by path relative to it ({} if absent)."""

    def command(self, path: str) -> str:
        quoted = shlex.quote(path)
        return (
            f"if [ -d {quoted} ]; then cd {quoted} && find . -type f | LC_ALL=C sort | "
            f"while read -r f; do {_SHA256}; done; fi"
        )

    def process(self, output: list[str]) -> dict[str, str]:  # type: ignore[override]
        digests = {}
        for line in output:
            digest, _, name = line.partition("  ")
            digests[name.removeprefix("./")] = digest
        return digests

    def default(self) -> dict[str, str]:  # type: ignore[override]
        return {}


class TextFile(FactBase[str | None]):
    """The contents of a small text file, or None when it does not exist."""

    def command(self, path: str) -> str:
        quoted = shlex.quote(path)
        return f"if [ -f {quoted} ]; then cat {quoted}; fi"

    def process(self, output: list[str]) -> str:  # type: ignore[override]
        return "\n".join(output)

    def default(self) -> None:  # type: ignore[override]
        return None


class Executable(FactBase[bool]):
    """Whether `path` is an executable file."""

    def command(self, path: str) -> str:
        return f"if [ -x {shlex.quote(path)} ]; then echo yes; else echo no; fi"

    def process(self, output: list[str]) -> bool:  # type: ignore[override]
        return output == ["yes"]

    def default(self) -> bool:  # type: ignore[override]
        return False
