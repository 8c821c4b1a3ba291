"""Fixtures for the newcomer's path: demo configs on free ports, a fresh clone, Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from minicluster.core.config import parse_config
from minicluster.demo.ports import free_port_block
from minicluster.demo.run import demo_profile
from tests.demo.browser import Browser
from tests.support import require_tool

REPO = Path(__file__).resolve().parents[2]


def demo_config_file(tmp_path: Path, **trainer) -> Path:
    """The demo's own profile with every port kernel-chosen (other tests run at the same
    time) and Grafana's generated secrets under tmp_path."""
    config = demo_profile(tmp_path / "state")
    data = config.model_dump(mode="json")
    taken: set[int] = set()

    def port(count: int = 1) -> int:
        base = free_port_block(count, avoid=taken)
        taken.update(range(base, base + count))
        return base

    for section in ("prometheus", "alertmanager", "grafana"):
        data[section]["port"] = port()
    data["trainer"]["rendezvous_port"] = port()
    data["trainer"].update(trainer)
    for node in data["nodes"]:
        node["exporter_port"] = port()
        node["metrics_base_port"] = port(data["trainer"]["nproc_per_node"])
    data["grafana"]["admin_password_file"] = str(tmp_path / "secrets" / "grafana-admin-password")
    data["grafana"]["secret_key_file"] = str(tmp_path / "secrets" / "grafana-secret-key")
    path = tmp_path / "demo-config.yaml"
    path.write_text(parse_config(data, "test").to_yaml())
    return path


@pytest.fixture(scope="session")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`git clone` of this repository: only committed files, no venv, as a newcomer gets it."""
    git = require_tool("git", "apt-get install -y git")
    clone = tmp_path_factory.mktemp("newcomer") / "minicluster"
    subprocess.run([git, "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    return clone


def make_env(state_home: Path) -> dict[str, str]:
    """The environment `make` runs in: this one, minus the test venv, with its own state dir."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != bin_dir)
    env["XDG_STATE_HOME"] = str(state_home)
    return env


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    chromium = Browser(profile)
    try:
        yield chromium
    finally:
        chromium.close()
