"""Fixtures for the launcher tests: loopback cluster configs on free ports, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import yaml

from minicluster.core.config import Config, ConfigError, parse_config
from minicluster.core.profiles import local_profile
from minicluster.core.promapi import Prometheus, prometheus_client_for
from tests.hosts.fixtures import two_minis  # noqa: F401  (the simulated Minis)
from tests.support import free_port, wait_until

# Small and quick on a shared 2-core machine: a few steps of the default MLP.
FAST_TRAINER = {"log_interval": 2, "linger_seconds": 0, "rendezvous_timeout_seconds": 60}


def loopback_config(state_dir: Path, **trainer: object) -> Config:
    """The local profile's two nodes on 127.0.0.1, with kernel-chosen free ports."""
    for _attempt in range(20):
        data = local_profile(state_dir).model_dump(mode="json")
        for node in data["nodes"]:
            node["exporter_port"] = free_port()
            node["metrics_base_port"] = free_port()
        data["prometheus"]["port"] = free_port()
        data["alertmanager"]["port"] = free_port()
        data["grafana"]["port"] = free_port()
        data["trainer"].update(rendezvous_port=free_port(), **FAST_TRAINER, **trainer)
        try:
            return parse_config(data, "<test>")
        except ConfigError as exc:
            # The kernel may hand out a port again once it is closed, and a rank range
            # (base + local rank) may reach another pick: draw again.
            if "is already used by" not in str(exc):
                raise
    raise AssertionError("no collision-free set of ports in 20 draws")


def write_config(config: Config, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return path


@pytest.fixture
def cluster(tmp_path: Path) -> tuple[Config, Path]:
    """(config, its file) for two loopback nodes under tmp_path."""
    config = loopback_config(tmp_path / "state")
    return config, write_config(config, tmp_path / "config.yaml")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "minicluster", *args]


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 240):
    return subprocess.run(
        cli(*args),
        cwd=cwd,
        env=env if env is not None else dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def processes_naming(text: str) -> list[psutil.Process]:
    """Live processes whose command line contains `text` (a job id is unique)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if text in " ".join(process.info["cmdline"] or []):
                found.append(process)
        except psutil.Error:
            continue
    return found


def pair_prometheus(cluster) -> Prometheus:
    """The deployed pair's Prometheus, on the master host (https and the web user's
    password from the harness's PKI when TLS is on)."""
    return prometheus_client_for(cluster.config)


def deploy_pair(cluster, **sections: object) -> None:
    """`minicluster deploy` to both simulated hosts with `sections` in config.yaml; returns
    once Prometheus sees both exporters up."""
    cluster.write_config(**sections)
    result = subprocess.run(
        cli("deploy", "--config", str(cluster.config_path)),
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"deploy failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    prom = pair_prometheus(cluster)
    wait_until(
        lambda: len(prom.query('up{job="node"} == 1')) == 2, "both exporters up", timeout=120
    )


def job_processes(cluster, host, markers: tuple[str, ...]) -> list[tuple[psutil.Process, str]]:
    """Live processes in `host`'s namespace whose command line contains one of `markers`,
    with that command line."""
    found = []
    for pid in host.pids(cluster.lan):
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            command = " ".join(process.cmdline())
        except psutil.Error:
            continue
        if any(marker in command for marker in markers):
            found.append((process, command))
    return found
