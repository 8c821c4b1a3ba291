"""An offline wheelhouse for the simulated hosts, so `pip install` there needs no network.

The simulated hosts have no route to the internet (only the test bridge), like an
air-gapped site. Their pip is pointed at this folder (PIP_NO_INDEX, PIP_FIND_LINKS set by
sshd), so deploy's ordinary `pip install <the project wheel>` resolves every dependency
from it. It holds what a node installs: the project's base dependencies (pyproject's
`dependencies`, no extra: the control machine's tools are not there, so a node install
that asked for them would fail) and what they need in turn, at exactly the versions
installed in the test runner's own environment (torch is the CPU build found there, so
no CUDA wheel is ever fetched). It is downloaded
once per set of versions into ~/.cache and reused by later runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "minicluster-tests"
# The Makefile's local CPU torch folder; PyTorch's CPU index when it is not there.
TORCH_WHEELS = Path("/opt/wheels")
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def node_requirements(pyproject: Path = PYPROJECT) -> list[Requirement]:
    """The project's base dependencies: what every node's venv gets."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return [Requirement(req) for req in project["dependencies"]]


def runtime_pins(requirements: list[Requirement] | None = None) -> list[str]:
    """`name==version` for the node requirements and theirs, as installed here."""
    pins: dict[str, str] = {}
    todo = list(node_requirements() if requirements is None else requirements)
    while todo:
        req = todo.pop()
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue  # an optional extra (dev tools) or another platform's dependency
        name = _canonical(req.name)
        if name in pins:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            raise RuntimeError(
                f"{req.name}, which a node installs, is not installed here: run `make install`"
            ) from None
        pins[name] = dist.version
        todo.extend(Requirement(r) for r in dist.requires or [])
    return sorted(f"{name}=={version}" for name, version in pins.items())


def _reuse_cached(pins: list[str], target: Path) -> list[str]:
    """Link wheels an earlier wheelhouse already has into `target`; the pins still missing."""
    wanted = {pin: (canonicalize_name(pin.split("==")[0]), pin.split("==")[1]) for pin in pins}
    found: dict[str, Path] = {}
    for wheel in sorted(CACHE.glob("wheelhouse-*/*.whl")):
        if not (wheel.parent / ".complete").exists():
            continue
        try:
            name, version, _, _ = parse_wheel_filename(wheel.name)
        except InvalidWheelFilename:
            continue
        for pin, (pin_name, pin_version) in wanted.items():
            if name == pin_name and version == Version(pin_version):
                found.setdefault(pin, wheel)
    target.mkdir(parents=True, exist_ok=True)
    for wheel in found.values():
        link = target / wheel.name
        if not link.exists():
            os.link(wheel, link)
    return [pin for pin in pins if pin not in found]


def wheelhouse() -> Path:
    """The cached folder of wheels for `runtime_pins()`; downloaded on first use."""
    pins = runtime_pins()
    digest = hashlib.sha256("\n".join(pins).encode()).hexdigest()[:16]
    target = CACHE / f"wheelhouse-{digest}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "wheelhouse.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be filling it right now
        if (target / ".complete").exists():
            return target
        # A changed set of versions mostly reuses the last one's wheels (torch is most of it).
        missing = _reuse_cached(pins, target)
        if missing:
            if TORCH_WHEELS.is_dir():
                sources = ["--find-links", str(TORCH_WHEELS)]
            else:
                sources = ["--extra-index-url", TORCH_CPU_INDEX]
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--only-binary", ":all:", "--dest", str(target), *sources, *missing],
                check=True,
            )  # fmt: skip
        (target / ".complete").write_text("\n".join(pins) + "\n")
    return target
