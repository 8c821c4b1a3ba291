"""Nodes install only what nodes run: the project wheel without extras, into the node venv."""

from __future__ import annotations

import shlex
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
