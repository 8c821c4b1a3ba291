"""An offline wheelhouse for the simulated hosts, so `pip install` there needs no network.

The simulated hosts have no route to the internet (only the test bridge), like an
air-gapped site. Their pip is pointed at this folder (PIP_NO_INDEX, PIP_FIND_LINKS set by
sshd), so deploy's ordinary `pip install <the project wheel>` resolves every dependency
from it. It holds exactly the versions installed in the test runner's own environment
(torch is the CPU build found there, so no CUDA wheel is ever fetched). It is downloaded
once per set of versions into ~/.cache and reused by later runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

PROJECT = "minicluster"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "minicluster-tests"
# The Makefile's local CPU torch folder; PyTorch's CPU index when it is not there.
TORCH_WHEELS = Path("/opt/wheels")
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_pins(project: str = PROJECT) -> list[str]:
    """`name==version` for every runtime dependency of `project`, as installed here."""
    pins: dict[str, str] = {}
    todo = [Requirement(req) for req in metadata.requires(project) or []]
    while todo:
        req = todo.pop()
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue  # an optional extra (dev tools) or another platform's dependency
        name = _canonical(req.name)
        if name in pins:
            continue
        dist = metadata.distribution(req.name)
        pins[name] = dist.version
        todo.extend(Requirement(r) for r in dist.requires or [])
    return sorted(f"{name}=={version}" for name, version in pins.items())


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
        if TORCH_WHEELS.is_dir():
            sources = ["--find-links", str(TORCH_WHEELS)]
        else:
            sources = ["--extra-index-url", TORCH_CPU_INDEX]
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary", ":all:", "--dest", str(target), *sources, *pins],
            check=True,
        )  # fmt: skip
        (target / ".complete").write_text("\n".join(pins) + "\n")
    return target
