"""`minicluster config check|show`, run as users run it: the installed console script."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from minicluster.core.config import load_config

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config.example.yaml"
CLI = str(Path(sys.executable).with_name("minicluster"))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=60)


def shipped() -> dict:
    return yaml.safe_load(SHIPPED.read_text())


def write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def mutate(change) -> dict:
    data = copy.deepcopy(shipped())
    change(data)
    return data


# (id, change to the shipped config, expected "key.path: reason" fragment)
MALFORMED = [
    ("unknown-top-level", lambda d: d.update(clusterr={}), "clusterr: unknown key"),
    (
        "unknown-node-key",
        lambda d: d["nodes"][0].update(sshuser="x"),
        "nodes[0].sshuser: unknown key",
    ),
    (
        "unknown-trainer-key",
        lambda d: d["trainer"].update(epochs=3),
        "trainer.epochs: unknown key",
    ),
    (
        "two-masters",
        lambda d: d["nodes"][1].update(role="master"),
        "nodes[1].role: a second master (the first is mini-red)",
    ),
    (
        "no-master",
        lambda d: d["nodes"][0].update(role="worker"),
        "nodes: no node has role master",
    ),
    ("bad-role", lambda d: d["nodes"][1].update(role="boss"), "nodes[1].role: Input should be"),
    (
        "duplicate-name",
        lambda d: d["nodes"][1].update(name="mini-red"),
        "nodes[1].name: 'mini-red' is already nodes[0]",
    ),
    (
        "duplicate-address",
        lambda d: d["nodes"][1].update(address="192.0.2.10"),
        "nodes[1].address: 192.0.2.10 is already the address of mini-red",
    ),
    (
        "exporter-on-prometheus-port",
        lambda d: d["nodes"][0].update(exporter_port=9090),
        "nodes[0].exporter_port: 9090 is already used by prometheus on mini-red",
    ),
    (
        "rank-port-on-exporter-port",
        lambda d: d["trainer"].update(metrics_base_port=9100),
        "trainer.metrics_base_port: 9100 is already used by the exporter on mini-red",
    ),
    (
        "rendezvous-on-grafana-port",
        lambda d: d["trainer"].update(rendezvous_port=3000),
        "trainer.rendezvous_port: 3000 is already used by grafana on mini-red",
    ),
    (
        "node-override-rank-port-collides",
        lambda d: d["nodes"][1].update(metrics_base_port=9100),
        "nodes[1].metrics_base_port: 9100 is already used by the exporter on mini-yellow",
    ),
    (
        "rank-ports-past-65535",
        lambda d: d["trainer"].update(metrics_base_port=65535, nproc_per_node=2),
        "trainer.metrics_base_port: rank port 65536 is above 65535",
    ),
    (
        "port-too-large",
        lambda d: d["prometheus"].update(port=70000),
        "prometheus.port: Input should be less than or equal to 65535",
    ),
    (
        "port-zero",
        lambda d: d["nodes"][1].update(ssh_port=0),
        "nodes[1].ssh_port: Input should be greater than or equal to 1",
    ),
    (
        "timeout-over-interval",
        lambda d: d["prometheus"].update(scrape_timeout_seconds=20),
        "prometheus.scrape_timeout_seconds: 20 is longer than scrape_interval_seconds (15)",
    ),
    (
        "install-dir-in-documents",
        lambda d: d["nodes"][1].update(install_dir="/Users/admin/Documents/minicluster"),
        "nodes[1].install_dir: '/Users/admin/Documents/minicluster' is under ~/Documents",
    ),
    (
        "checkpoints-on-desktop",
        lambda d: d["trainer"].update(checkpoint_dir="~/Desktop/ckpt"),
        "trainer.checkpoint_dir: '~/Desktop/ckpt' is under ~/Desktop",
    ),
    (
        "logs-in-downloads",
        lambda d: d["trainer"].update(log_dir="/Users/me/Downloads/logs"),
        "trainer.log_dir: '/Users/me/Downloads/logs' is under ~/Downloads",
    ),
    (
        "relative-install-dir",
        lambda d: d["nodes"][0].update(install_dir="opt/minicluster"),
        "nodes[0].install_dir: 'opt/minicluster' must be an absolute path",
    ),
    ("bad-device", lambda d: d["trainer"].update(device="gpu"), "trainer.device: Input should be"),
    (
        "missing-address",
        lambda d: d["nodes"][0].pop("address"),
        "nodes[0].address: required key is missing",
    ),
    (
        "bad-address",
        lambda d: d["nodes"][0].update(address="mini red!"),
        "nodes[0].address: 'mini red!' is neither an IP address nor a host name",
    ),
    (
        "bad-node-name",
        lambda d: d["nodes"][0].update(name="Mini_Red"),
        "nodes[0].name: must be lower-case letters, digits and '-'",
    ),
    ("no-nodes", lambda d: d.update(nodes=[]), "nodes: List should have at least 1 item"),
    (
        "ratio-above-one",
        lambda d: d["alerts"].update(cpu_saturated_ratio=1.5),
        "alerts.cpu_saturated_ratio: Input should be less than or equal to 1",
    ),
    (
        "string-for-int",
        lambda d: d["trainer"].update(steps="many"),
        "trainer.steps: Input should be a valid integer",
    ),
    (
        "unknown-collector",
        lambda d: d["exporter"].update(disabled_collectors=["cpu", "gpus"]),
        "exporter.disabled_collectors: unknown collector 'gpus'",
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"),
    [pytest.param(change, expected, id=name) for name, change, expected in MALFORMED],
)
def test_malformed_config_is_one_line_with_the_key_path(tmp_path, change, expected):
    path = write(tmp_path, mutate(change))
    result = run_cli("config", "check", str(path))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{path}: "), lines[0]
    assert expected in lines[0]
    assert result.stdout == ""


def test_yaml_syntax_error_names_the_line(tmp_path):
    text = SHIPPED.read_text().replace("  port: 9090\n", "  port: [9090\n", 1)
    broken_line = text.splitlines().index("  port: [9090") + 1
    path = write(tmp_path, text)
    result = run_cli("config", "check", str(path))
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{path}: line ")
    assert "invalid YAML" in line
    # The parser reports where it noticed the problem: at or just after the broken line.
    reported = int(line.split("line ")[1].split(":")[0])
    assert broken_line <= reported <= broken_line + 2


def test_duplicate_yaml_key_is_refused_with_its_line(tmp_path):
    text = SHIPPED.read_text().replace("  port: 9090\n", "  port: 9090\n  port: 9091\n", 1)
    path = write(tmp_path, text)
    result = run_cli("config", "check", str(path))
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    second = text.splitlines().index("  port: 9091") + 1
    assert f"line {second}: invalid YAML: duplicate key 'port'" in line


def test_top_level_must_be_a_mapping(tmp_path):
    path = write(tmp_path, "- just\n- a list\n")
    result = run_cli("config", "check", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"{path}: the top level must be a mapping of sections"


def test_missing_file(tmp_path):
    result = run_cli("config", "check", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"{tmp_path / 'nope.yaml'}: no such file"


def test_shipped_config_checks_clean():
    result = run_cli("config", "check", str(SHIPPED))
    assert result.returncode == 0, result.stderr
    assert "2 nodes: mini-red (master, 192.0.2.10), mini-yellow (worker, 192.0.2.11)" in (
        result.stdout
    )


def test_show_round_trips(tmp_path):
    """`config show` prints a file that checks clean and resolves to the same config."""
    minimal = {
        "nodes": [
            {"name": "a", "address": "10.0.0.1", "role": "master", "ssh_user": "me"},
            {"name": "b", "address": "10.0.0.2", "role": "worker", "ssh_user": "me"},
        ],
        "trainer": {"steps": 7},
    }
    for source in (write(tmp_path, minimal), SHIPPED):
        first = run_cli("config", "show", str(source))
        assert first.returncode == 0, first.stderr
        resolved = tmp_path / "resolved.yaml"
        resolved.write_text(first.stdout)
        second = run_cli("config", "show", str(resolved))
        assert second.stdout == first.stdout
        assert load_config(resolved) == load_config(source)
    shown = yaml.safe_load(first.stdout)
    assert shown["prometheus"]["scrape_interval_seconds"] == 15  # defaults are filled in


def test_show_local_profile_needs_no_file(tmp_path):
    result = subprocess.run(
        [CLI, "config", "show", "--local"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(result.stdout)
    assert [n["name"] for n in data["nodes"]] == ["mini-red", "mini-yellow"]
    assert {n["address"] for n in data["nodes"]} == {"127.0.0.1"}
