"""The distribution: one import package, every package listed, every import declared in the
group of the machines that run it, one torch version."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from minicluster.deploy.wheel import build_wheel
from tests.support import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# Folder -> import name (pyproject's package-dir).
FOLDERS = {"minicluster": "minicluster", **{
    folder: name for name, folder in PYPROJECT["tool"]["setuptools"]["package-dir"].items()
}}  # fmt: skip
# What the Minis run, installed from the bare wheel: only base dependencies. The CLI's
# parser is checked apart (test_every_command_starts_without_the_control_extra).
NODE_PACKAGES = (
    "minicluster.core",
    "minicluster.exporter",
    "minicluster.trainer",
    "minicluster.track",
)
CONTROL_ONLY = "control"


def requirements(group: str | None) -> set[str]:
    project = PYPROJECT["project"]
    listed = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return {canonicalize_name(Requirement(text).name) for text in listed}


def module_name(path: Path) -> str:
    relative = path.relative_to(REPO).with_suffix("")
    parts = [FOLDERS[relative.parts[0]], *relative.parts[1:]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (REPO / folder).rglob("*.py"))


def third_party_imports(path: Path) -> set[str]:
    """Top-level names of every non-stdlib, non-project module `path` imports, at any depth
    (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top not in ("minicluster", "tests"):
                found.add(top)
    return found


def distribution(import_name: str) -> str:
    dists = importlib.metadata.packages_distributions().get(import_name)
    assert dists, f"{import_name} is imported but no installed distribution provides it"
    return canonicalize_name(dists[0])


def test_every_package_folder_is_listed():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {
        module_name(init)
        for folder in FOLDERS
        for init in (REPO / folder).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == set(), "listed in pyproject.toml but no folder with __init__.py"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel deploy ships (`pip wheel --no-deps`, built offline)."""
    return build_wheel(tmp_path_factory.mktemp("wheel")).path


def test_the_wheel_installs_one_import_package(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"minicluster"}
    for folder, package in FOLDERS.items():
        assert f"{package.replace('.', '/')}/__init__.py" in names, folder
    assert not [n for n in names if n.startswith("minicluster/tests")]


def test_the_wheel_declares_the_extras(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(meta).decode()
    extras = set(re.findall(r"^Provides-Extra: (\S+)$", text, re.M))
    assert extras == {"control", "dev"}
    base = {
        canonicalize_name(Requirement(line.split(": ", 1)[1]).name)
        for line in text.splitlines()
        if line.startswith("Requires-Dist: ") and "extra ==" not in line
    }
    assert base == requirements(None)
    assert not base & {"pyinfra", "gevent", "matplotlib", "grafana-foundation-sdk"}


def test_node_code_imports_only_base_dependencies():
    base = requirements(None)
    wrong = {
        f"{module_name(path)} imports {name} ({distribution(name)})"
        for path in source_files()
        if module_name(path).startswith(NODE_PACKAGES)
        for name in third_party_imports(path)
        if distribution(name) not in base
    }
    assert wrong == set(), "nodes install only the base dependencies"


def test_every_import_is_declared():
    allowed = requirements(None) | requirements(CONTROL_ONLY)
    undeclared = {
        f"{module_name(path)} imports {name} ({distribution(name)})"
        for path in source_files()
        for name in third_party_imports(path)
        if distribution(name) not in allowed
    }
    assert undeclared == set(), "declare these in pyproject.toml (base, or the control extra)"


def test_every_test_import_is_declared():
    allowed = requirements(None) | requirements(CONTROL_ONLY) | requirements("dev")
    undeclared = {
        f"{path.relative_to(REPO)} imports {name} ({distribution(name)})"
        for path in sorted((REPO / "tests").rglob("*.py"))
        for name in third_party_imports(path)
        if distribution(name) not in allowed
    }
    assert undeclared == set(), "declare these in the dev extra"


CONTROL_BLOCKER = """
import importlib, importlib.abc, sys

BLOCKED = {blocked!r}


class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)


sys.meta_path.insert(0, Missing())
from minicluster.cli import COMMANDS, build_parser

build_parser()
for module in {modules!r}:
    importlib.import_module(module)
print("ok")
"""


def test_every_command_starts_without_the_control_extra():
    """On a Mini (bare wheel) the `minicluster` command and what runs there import."""
    blocked = sorted(
        top
        for top, dists in importlib.metadata.packages_distributions().items()
        if {canonicalize_name(d) for d in dists} & requirements(CONTROL_ONLY)
    )
    assert {"pyinfra", "gevent", "matplotlib", "grafana_foundation_sdk"} <= set(blocked)
    modules = [
        "minicluster.exporter.cli",
        "minicluster.exporter.server",
        "minicluster.trainer.trainer",
        "minicluster.track",
        "minicluster.launcher.reap",
        "minicluster.launcher.clock",
    ]
    probe = CONTROL_BLOCKER.format(blocked=blocked, modules=modules)
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_makefile_pins_a_torch_the_package_admits():
    """The Makefile's TORCH_VERSION is the one version installed; pyproject's range must
    admit it."""
    match = re.search(r"^TORCH_VERSION \?= (\S+)$", (REPO / "Makefile").read_text(), re.M)
    assert match, "the Makefile sets TORCH_VERSION"
    (torch,) = [
        Requirement(text) for text in PYPROJECT["project"]["dependencies"]
        if canonicalize_name(Requirement(text).name) == "torch"
    ]  # fmt: skip
    assert Version(match[1]) in torch.specifier, (match[1], str(torch.specifier))
    others = [
        path.relative_to(REPO)
        for path in [REPO / ".ci" / "run", REPO / "README.md", *source_files()]
        if match[1] in path.read_text()
    ]
    assert others == [], "the torch version is written only in the Makefile"
