"""Which files of a project travel to the nodes, and their content hashes.

Git decides what `.gitignore` excludes: in a git work tree, `git ls-files --cached --others
--exclude-standard`; outside one, the same command against a throwaway empty repository
with the project as its work tree, so nested .gitignore files, negations and
`.git/info/exclude` follow git's own rules rather than an approximation of them. On top of
that, whatever git says, these stay home: `.git`, any virtual environment (a folder with
pyvenv.cfg), `__pycache__` and tool caches.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from minicluster.launcher.receive import file_sha256, manifest_digest

# Folder names never shipped, wherever they are in the tree.
SKIPPED_DIRS = frozenset(
    {
        ".git",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        ".ipynb_checkpoints",
        "node_modules",
    }
)
SKIPPED_SUFFIXES = (".pyc", ".pyo")
# What one run-job may ship; a bigger project is almost always data or checkpoints that
# belong in .gitignore (and on the nodes by other means).
MAX_BYTES = 256 * 1024 * 1024


class ShipError(Exception):
    """The project cannot be shipped; one line naming the node or file and the cause."""


@dataclass(frozen=True)
class ProjectFiles:
    root: Path
    manifest: dict[str, str]  # relative posix path -> sha256
    sizes: dict[str, int]

    @property
    def digest(self) -> str:
        return manifest_digest(self.manifest)

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes.values())


def _git_listing(root: Path) -> list[str]:
    git = shutil.which("git")
    if git is None:
        raise ShipError("git is not installed; run-job uses it to read .gitignore")
    command = [git, "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    inside = subprocess.run(
        [git, "-C", str(root), "rev-parse", "--show-prefix"],
        capture_output=True,
        text=True,
        check=False,
    )
    if inside.returncode == 0:
        done = subprocess.run(command, capture_output=True, check=False)
    else:
        with tempfile.TemporaryDirectory(prefix="minicluster-gitignore-") as scratch:
            subprocess.run([git, "init", "-q", scratch], check=True, capture_output=True)
            done = subprocess.run(
                [git, f"--git-dir={scratch}/.git", f"--work-tree={root}", *command[3:]],
                capture_output=True,
                check=False,
                cwd=root,
            )
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise ShipError(f"{root}: git ls-files failed: {reason[-1] if reason else ''}")
    return sorted({name for name in done.stdout.decode().split("\0") if name})


def _venv_dirs(root: Path) -> set[PurePosixPath]:
    return {p.parent.relative_to(root).as_posix() for p in root.rglob("pyvenv.cfg")}


def _skipped(relative: str, venvs: set[str]) -> bool:
    path = PurePosixPath(relative)
    if any(part in SKIPPED_DIRS for part in path.parts[:-1]) or path.name == ".git":
        return True
    if path.suffix in SKIPPED_SUFFIXES:
        return True
    return any(str(parent) in venvs for parent in path.parents)


def project_files(root: Path, max_bytes: int = MAX_BYTES) -> ProjectFiles:
    """Every file that ships, hashed; raises ShipError past `max_bytes`."""
    root = root.resolve()
    venvs = _venv_dirs(root)
    manifest: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for relative in _git_listing(root):
        path = root / relative
        # A tracked file deleted in the work tree, or a link to a folder (a submodule).
        if _skipped(relative, venvs) or not path.is_file():
            continue
        sizes[relative] = path.stat().st_size
        if sum(sizes.values()) > max_bytes:
            biggest = max(sizes, key=sizes.__getitem__)
            raise ShipError(
                f"{root}: more than {max_bytes / 1e6:.0f} MB to ship (largest so far: "
                f"{biggest}, {sizes[biggest] / 1e6:.1f} MB); list data and checkpoints in "
                ".gitignore"
            )
        manifest[relative] = file_sha256(path)
    return ProjectFiles(root, manifest, sizes)


def delta(local: dict[str, str], remote: dict[str, str]) -> tuple[list[str], list[str]]:
    """(paths to send, paths to delete on the node) to turn `remote` into `local`."""
    send = sorted(p for p, h in local.items() if remote.get(p) != h)
    delete = sorted(p for p in remote if p not in local)
    return send, delete


def human_bytes(count: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"
