"""Nodes install only what nodes run: the project wheel without extras, into the node venv."""

from __future__ import annotations

import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from minicluster.core import layout
from minicluster.deploy.wheel import install_commands
from tests.deploy.conftest import Deployed

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
WHEEL = "/opt/minicluster/wheels/minicluster-0.1.0-py3-none-any.whl"
PYTHON = "/opt/minicluster/venv/bin/python"
# What runs on a node: the exporter (launchd), the trainer (torchrun), the launcher's
# stop, clock and receive helpers over ssh, the tracker inside a user's program.
NODE_MODULES = (
    "minicluster.exporter.cli",
    "minicluster.trainer.__main__",
    "minicluster.launcher.reap",
    "minicluster.launcher.clock",
    "minicluster.launcher.receive",
    "minicluster.track.observe",
)
# The control machine's tools, by import name.
CONTROL_IMPORTS = ("pyinfra", "gevent", "matplotlib", "grafana_foundation_sdk")
IMPORT_WITHOUT = """
import importlib, importlib.abc, sys
blocked, modules = sys.argv[1].split(","), sys.argv[2].split(",")
class NotOnANode(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} is not installed on a node")
sys.meta_path.insert(0, NotOnANode())
for module in modules:
    importlib.import_module(module)
"""


def control_only_packages() -> set[str]:
    """Packages in the project's extras that no base dependency names."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    base = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    extras = project.get("optional-dependencies", {}).values()
    return {canonicalize_name(Requirement(r).name) for reqs in extras for r in reqs} - base


def test_the_node_install_names_the_wheel_and_no_extra():
    install, with_deps, check = install_commands(PYTHON, WHEEL)
    for command in (install, with_deps):
        argv = shlex.split(command)
        assert argv[:4] == [PYTHON, "-m", "pip", "install"]
        assert argv[-1] == WHEEL  # the file itself: `wheel[extra]` would pull the extra in
        assert not any("[" in arg for arg in argv)
    assert "--no-deps" in shlex.split(install) and "--no-deps" not in shlex.split(with_deps)
    assert shlex.split(check) == [PYTHON, "-m", "pip", "check"]


def test_what_runs_on_a_node_imports_without_the_control_machines_tools():
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_WITHOUT, ",".join(CONTROL_IMPORTS), ",".join(NODE_MODULES)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.mark.e2e
def test_a_deployed_node_has_none_of_the_extras(deployed: Deployed):
    unwanted = control_only_packages()
    assert "pytest" in unwanted  # the dev extra, at least, is never a node's
    for host in deployed.cluster.hosts.values():
        node = deployed.cluster.config.node(host.name)
        listed = host.run([layout.venv_python(node), "-m", "pip", "list", "--format=freeze"])
        installed = {canonicalize_name(line.split("==")[0]) for line in listed.stdout.split()}
        assert {"minicluster", "torch", "prometheus-client"} <= installed
        assert installed & unwanted == set(), host.name
