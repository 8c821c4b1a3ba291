"""Build the project wheel once, on the control machine, for every node to install.

Every node gets exactly this file: no source tree on a path, no PYTHONPATH (which a
launchd job does not have, so a service that works in a shell would fail). The build
runs on a copy of the sources so stale `build/` folders in the checkout cannot leak old
modules into the wheel, and with a fixed SOURCE_DATE_EPOCH so unchanged sources give a
byte-identical wheel: a second deploy then sees the same sha256 and reinstalls nothing.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Not part of any distribution package; copying them would only slow the build.
_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
    ".ruff_cache", "tests", "*.pyc",
)  # fmt: skip
# 1980-01-01, the earliest time a zip entry can carry.
_ZIP_EPOCH = "315532800"


class WheelBuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Wheel:
    path: Path
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name


def build_wheel(out_dir: Path, project_root: Path = PROJECT_ROOT) -> Wheel:
    """`pip wheel --no-deps` of the project into `out_dir`; the one wheel it made."""
    if not (project_root / "pyproject.toml").is_file():
        raise WheelBuildError(f"{project_root} is not a source checkout (no pyproject.toml)")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="minicluster-wheel-") as tmp:
        source = Path(tmp) / "src"
        shutil.copytree(project_root, source, ignore=_IGNORE, symlinks=True)
        env = {**os.environ, "SOURCE_DATE_EPOCH": _ZIP_EPOCH}
        # No build isolation: the control machine's own setuptools builds it, offline.
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
             "--no-build-isolation", "--wheel-dir", tmp, str(source)],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        wheels = sorted(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or len(wheels) != 1:
            raise WheelBuildError(f"building the project wheel failed:\n{result.stderr.strip()}")
        target = out_dir / wheels[0].name
        shutil.copyfile(wheels[0], target)
    return Wheel(target, hashlib.sha256(target.read_bytes()).hexdigest())


def existing_wheel(path: Path) -> Wheel:
    """A wheel built elsewhere (a release, or CI's), deployed as it is."""
    if path.suffix != ".whl" or not path.is_file():
        raise WheelBuildError(f"{path}: no such wheel file")
    return Wheel(path, hashlib.sha256(path.read_bytes()).hexdigest())


def install_commands(python: str, remote_wheel: str) -> list[str]:
    """pip commands that install `remote_wheel` into the venv of `python` on a node.

    The wheel is named bare, never `wheel[extra]`: a node gets the base dependencies only
    (what the exporter and the trainer import, torch among them), not the control machine's
    extra (pyinfra, gevent, matplotlib, the Grafana SDK).
    --no-compile: byte-compiling all of torch at install time doubles the install; the
    services compile what they import on first start (the venv belongs to their user).
    """
    pip = f"{shlex.quote(python)} -m pip install --quiet --no-compile"
    wheel = shlex.quote(remote_wheel)
    return [
        # The package itself first (the version number may be unchanged while the code is
        # not), then whatever dependencies its metadata now asks for.
        f"{pip} --force-reinstall --no-deps {wheel}",
        f"{pip} {wheel}",
        f"{shlex.quote(python)} -m pip check",
    ]
