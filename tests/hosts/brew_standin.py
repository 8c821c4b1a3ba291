"""A test-only stand-in for Homebrew's `brew` on the simulated (Linux) hosts.

It answers the calls deploy makes, in Homebrew's own words and layout under the prefix
(/opt/homebrew, as on Apple Silicon), so the deploy runs its macOS path unchanged:

    brew --prefix                     the prefix
    brew --version                    "Homebrew 4.4.0"
    brew list --versions [FORMULA...] "name version" per installed formula (exit 1 if a
                                      named one is not installed)
    brew install FORMULA...           link the host's own binaries into the prefix
    brew uninstall FORMULA...         unlink them

"Installing" a formula links what the host already has (Debian's packages) the way
Homebrew links a keg: <prefix>/Cellar/<formula>/<version>/bin/<tool> points at the host's
binary, <prefix>/bin/<tool> at the keg, <prefix>/opt/<formula> at the keg. The version is
the one the binary reports. A formula the host has nothing for (grafana) is refused as
Homebrew refuses an unknown one. Standard library only: it runs with the harness's base
interpreter, before any venv exists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

VERSION = "Homebrew 4.4.0"
# formula -> {tool in <prefix>/bin: the host's binary}
FORMULAE = {
    "prometheus": {"prometheus": "/usr/bin/prometheus", "promtool": "/usr/bin/promtool"},
    "alertmanager": {
        "alertmanager": "/usr/bin/prometheus-alertmanager",
        "amtool": "/usr/bin/amtool",
    },
}
_PYTHON = re.compile(r"^python@(3\.[0-9]+)$")


def tools(formula: str) -> dict[str, str] | None:
    """The tools a formula provides on this host, or None if it cannot be installed."""
    if formula in FORMULAE:
        wanted = FORMULAE[formula]
    elif match := _PYTHON.match(formula):
        name = f"python{match.group(1)}"
        found = shutil.which(name, path="/usr/local/bin:/usr/bin")
        wanted = {name: found} if found else {}
    else:
        return None
    if not wanted or not all(Path(path).exists() for path in wanted.values()):
        return None
    return wanted


def binary_version(path: str) -> str:
    """`prometheus, version 2.42.0+ds (...)` -> 2.42.0 (Homebrew's versions have no +ds)."""
    result = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"(?:version|Python) ([0-9][0-9A-Za-z.]*)", result.stdout + result.stderr)
    return match.group(1) if match else "0"


class Prefix:
    def __init__(self, root: Path):
        self.root = root

    def keg(self, formula: str) -> Path | None:
        """The installed version's folder, or None."""
        cellar = self.root / "Cellar" / formula
        versions = sorted(cellar.iterdir()) if cellar.is_dir() else []
        return versions[-1] if versions else None

    def installed(self) -> list[str]:
        cellar = self.root / "Cellar"
        return sorted(p.name for p in cellar.iterdir()) if cellar.is_dir() else []

    def install(self, formula: str) -> int:
        if self.keg(formula):
            print(f"Warning: {formula} is already installed and up-to-date.", file=sys.stderr)
            return 0
        wanted = tools(formula)
        if wanted is None:
            print(f'Error: No available formula with the name "{formula}".', file=sys.stderr)
            return 1
        version = binary_version(next(iter(wanted.values())))
        keg = self.root / "Cellar" / formula / version
        (keg / "bin").mkdir(parents=True)
        (self.root / "bin").mkdir(parents=True, exist_ok=True)
        (self.root / "opt").mkdir(parents=True, exist_ok=True)
        for tool, target in wanted.items():
            (keg / "bin" / tool).symlink_to(target)
            link = self.root / "bin" / tool
            link.unlink(missing_ok=True)
            link.symlink_to(os.path.relpath(keg / "bin" / tool, link.parent))
        (self.root / "opt" / formula).symlink_to(os.path.relpath(keg, self.root / "opt"))
        print(f"==> Pouring {formula}--{version}")
        return 0

    def uninstall(self, formula: str) -> int:
        keg = self.keg(formula)
        if keg is None:
            print(f"Error: No such keg: {self.root}/Cellar/{formula}", file=sys.stderr)
            return 1
        for tool in (keg / "bin").iterdir():
            (self.root / "bin" / tool.name).unlink(missing_ok=True)
        (self.root / "opt" / formula).unlink(missing_ok=True)
        shutil.rmtree(keg.parent)
        print(f"Uninstalling {keg}...")
        return 0


def main(argv: list[str]) -> int:
    root, args = Path(argv[0]), argv[1:]
    prefix = Prefix(root)
    if args in (["--prefix"], ["--version"]):
        print(root if args == ["--prefix"] else VERSION)
        return 0
    if not args:
        print("Example usage: brew install FORMULA", file=sys.stderr)
        return 1
    command, rest = args[0], [a for a in args[1:] if not a.startswith("-")]
    flags = [a for a in args[1:] if a.startswith("-")]
    if command == "list":
        names = rest or prefix.installed()
        status = 0
        for name in names:
            keg = prefix.keg(name)
            if keg is None:
                print(f"Error: No such keg: {root}/Cellar/{name}", file=sys.stderr)
                status = 1
            elif "--versions" in flags:
                print(f"{name} {keg.name}")
            else:
                print(name)
        return status
    if command in ("install", "uninstall", "remove"):
        if not rest:
            print(f"Error: brew {command} needs a formula argument", file=sys.stderr)
            return 1
        act = prefix.install if command == "install" else prefix.uninstall
        return max(act(formula) for formula in rest)
    print(f"Error: stand-in brew does not implement `brew {command}`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
