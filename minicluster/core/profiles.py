"""The built-in local profile: two "nodes" on this one machine, for the demo and tests."""

from __future__ import annotations

import getpass
import os
import shutil
import sys
from pathlib import Path

from minicluster.core.config import Config, parse_config

LOCAL_SOURCE = "<local profile>"


def default_state_dir() -> Path:
    """Where the local profile keeps its files: outside the repository, per user."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "minicluster"


def _installed(*names: str) -> str | None:
    """The first of `names` on PATH (Debian calls Alertmanager prometheus-alertmanager)."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def local_profile(state_dir: Path | None = None, **sections: dict) -> Config:
    """mini-red and mini-yellow, both on 127.0.0.1 with their own ports and folders.

    `sections` override whole top-level sections (e.g. trainer={"steps": 30}).
    """
    state = Path(state_dir) if state_dir else default_state_dir()
    loopback = "lo0" if sys.platform == "darwin" else "lo"
    user = getpass.getuser()
    data: dict = {
        "cluster": {"name": "local"},
        "nodes": [
            {
                "name": "mini-red",
                "address": "127.0.0.1",
                "role": "master",
                "ssh_user": user,
                "install_dir": str(state / "mini-red"),
                "interface": loopback,
                "exporter_port": 9100,
                "python": sys.executable,
            },
            {
                "name": "mini-yellow",
                "address": "127.0.0.1",
                "role": "worker",
                "ssh_user": user,
                "install_dir": str(state / "mini-yellow"),
                "interface": loopback,
                "exporter_port": 9101,
                "python": sys.executable,
                "metrics_base_port": 9410,
            },
        ],
        "prometheus": {"scrape_interval_seconds": 5, "scrape_timeout_seconds": 4},
        "alertmanager": {},
        "grafana": {},
        "trainer": {"steps": 60, "checkpoint_interval": 20, "linger_seconds": 10},
        # One machine on loopback: the demo stays plain HTTP, and says so.
        "security": {"tls": False},
    }
    for section, names in [
        ("prometheus", ["prometheus"]),
        ("alertmanager", ["alertmanager", "prometheus-alertmanager"]),
        ("grafana", ["grafana", "grafana-server"]),
    ]:
        binary = _installed(*names)
        if binary:
            data[section]["binary"] = binary
    for key, values in sections.items():
        data.setdefault(key, {}).update(values)
    return parse_config(data, LOCAL_SOURCE)
