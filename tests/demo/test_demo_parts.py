"""The demo's parts that need no stack: ports, the PID record, refusing remote configs."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import yaml

from minicluster.core.config import load_config
from minicluster.demo import services
from minicluster.demo.ports import PORT_RANGE, busy_ports, free_port_block, with_free_ports
from minicluster.demo.run import DemoOptions, prepare_config
from tests.demo.conftest import REPO, demo_config_file

CLI = str(Path(sys.executable).with_name("minicluster"))


def test_busy_ports_move_and_the_rest_stay(tmp_path: Path) -> None:
    config = load_config(demo_config_file(tmp_path))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", config.prometheus.port))
        holder.listen(1)
        assert busy_ports(config) == [("prometheus.port", config.prometheus.port)]
        moved, notes = with_free_ports(config, "test")
    assert moved.prometheus.port != config.prometheus.port
    assert notes == [
        f"prometheus port {config.prometheus.port} is in use here; "
        f"the demo uses {moved.prometheus.port} instead"
    ]
    assert moved.alertmanager.port == config.alertmanager.port
    assert [n.exporter_port for n in moved.nodes] == [n.exporter_port for n in config.nodes]
    assert busy_ports(moved) == []


def test_free_ports_are_outside_the_ephemeral_range_and_never_repeat() -> None:
    """A job's outgoing connections take ephemeral ports, so a port handed to a server
    is not one of them, nor one handed out before (and perhaps not yet bound)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    blocks = [free_port_block(3) for _ in range(50)]
    ports = [port for base in blocks for port in range(base, base + 3)]
    assert len(set(ports)) == len(ports)
    assert all(PORT_RANGE.start <= port < min(PORT_RANGE.stop, low) for port in ports)


def test_a_config_asking_for_tls_runs_the_demo_plain_and_says_so(tmp_path: Path) -> None:
    path = demo_config_file(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["security"] = {"tls": True, "pki_dir": str(tmp_path / "pki")}
    path.write_text(yaml.safe_dump(data))
    said: list[str] = []
    options = DemoOptions(state_dir=tmp_path / "state", config_file=path)
    config = prepare_config(options, said.append)
    assert config.security.tls is False
    assert said == [
        "security.tls is ignored by the demo: its services listen on loopback only, plain HTTP"
    ]
    assert not (tmp_path / "pki").exists()  # no CA is made for a demo


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )


def test_stop_kills_exactly_the_recorded_processes(tmp_path: Path) -> None:
    ours, stranger = _sleeper(), _sleeper()
    try:
        entry = services.entry_for("exporter-mini-red", ours.pid, "http://x", tmp_path / "l")
        # A record whose PID now belongs to another process (its start time differs).
        reused = services.ServiceEntry(
            "prometheus", stranger.pid, psutil.Process(stranger.pid).create_time() - 100, "", ""
        )
        record = services.StackRecord("c.yaml", "now", [entry, reused])
        services.save(tmp_path, record)
        loaded = services.load(tmp_path)
        assert loaded == record and loaded.running
        assert services.is_alive(entry) and not services.is_alive(reused)

        lines = services.stop_services(tmp_path, loaded)

        assert lines == [
            f"prometheus: PID {stranger.pid} already gone",
            f"exporter-mini-red: stopped PID {ours.pid}",
        ]
        assert ours.wait(5) is not None
        assert stranger.poll() is None  # never signalled
        assert not services.load(tmp_path).running
    finally:
        for proc in (ours, stranger):
            proc.kill()
            proc.wait()


@pytest.mark.integration
def test_demo_refuses_a_config_with_remote_nodes(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            CLI,
            "demo",
            "--once",
            "--config",
            str(REPO / "config.example.yaml"),
            "--state-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "the demo runs on this machine only, but mini-red, mini-yellow" in result.stderr
    assert not (tmp_path / "demo" / "services.json").exists()


def test_demo_stop_without_a_stack(tmp_path: Path) -> None:
    result = subprocess.run(
        [CLI, "demo", "--stop", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (0, "no demo stack is running\n")


@pytest.mark.parametrize("flags", [["--stop", "--steps", "3"], ["--once", "--stop"]])
def test_demo_stop_takes_no_run_flags(tmp_path: Path, flags: list[str]) -> None:
    result = subprocess.run(
        [CLI, "demo", *flags, "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip()
