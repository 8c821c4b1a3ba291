"""Hostile and broken config files: each is refused with exit 2 and one stderr line that
names the key (or the file, when it cannot be parsed at all), quickly and without a
traceback. Values that reach ssh, a shell, grafana.ini, a plist or an environment
assignment are checked where the model declares them."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from minicluster import cli
from minicluster.core.config import MAX_FILE_BYTES, load_config, parse_config
from minicluster.core.ssh import SshTarget
from minicluster.exporter import cli as exporter_cli

BASE = {
    "nodes": [
        {"name": "mini-a", "address": "10.0.0.1", "role": "master", "ssh_user": "admin"},
        {"name": "mini-b", "address": "10.0.0.2", "role": "worker", "ssh_user": "admin"},
    ]
}


def node(**values):
    return lambda d: d["nodes"][0].update(values)


def section(title: str, **values):
    return lambda d: d.setdefault(title, {}).update(values)


# (id, change to BASE, the key the one line must name)
HOSTILE_VALUES = [
    ("ssh-user-option", node(ssh_user="-oProxyCommand=x"), "nodes[0].ssh_user"),
    ("ssh-user-newline", node(ssh_user="admin\nHost *"), "nodes[0].ssh_user"),
    ("ssh-user-space", node(ssh_user="ad min"), "nodes[0].ssh_user"),
    ("ssh-user-empty", node(ssh_user=""), "nodes[0].ssh_user"),
    ("ssh-user-shell", node(ssh_user="admin$(id)"), "nodes[0].ssh_user"),
    ("interface-shell", node(interface="en0; rm -rf /"), "nodes[0].interface"),
    ("interface-option", node(interface="-i"), "nodes[0].interface"),
    ("interface-newline", node(interface="en0\n"), "nodes[0].interface"),
    ("interface-too-long", node(interface="e" * 16), "nodes[0].interface"),
    ("install-dir-equals", node(install_dir="/opt/mini=cluster"), "nodes[0].install_dir"),
    ("install-dir-relative", node(install_dir="opt/minicluster"), "nodes[0].install_dir"),
    ("install-dir-newline", node(install_dir="/opt/mini\ncluster"), "nodes[0].install_dir"),
    ("install-dir-nul", node(install_dir="/opt/mini\0cluster"), "nodes[0].install_dir"),
    ("python-relative", node(python="python3"), "nodes[0].python"),
    ("ssh-key-newline", node(ssh_key="/k\n-oProxyCommand=x"), "nodes[0].ssh_key"),
    ("known-hosts-space", node(ssh_known_hosts_file="/a /b"), "nodes[0].ssh_known_hosts_file"),
    ("exporter-port-true", node(exporter_port=True), "nodes[0].exporter_port"),
    ("ssh-port-false", node(ssh_port=False), "nodes[0].ssh_port"),
    ("rank-port-true", node(metrics_base_port=True), "nodes[0].metrics_base_port"),
    ("prometheus-port-true", section("prometheus", port=True), "prometheus.port"),
    (
        "scrape-interval-true",
        section("prometheus", scrape_interval_seconds=True),
        "prometheus.scrape_interval_seconds",
    ),
    ("nproc-true", section("trainer", nproc_per_node=True), "trainer.nproc_per_node"),
    ("learning-rate-true", section("trainer", learning_rate=True), "trainer.learning_rate"),
    (
        "collector-timeout-true",
        section("exporter", collector_timeout_seconds=True),
        "exporter.collector_timeout_seconds",
    ),
    ("ratio-true", section("alerts", cpu_saturated_ratio=True), "alerts.cpu_saturated_ratio"),
    (
        "grafana-admin-ini-injection",
        section("grafana", admin_user="admin\n[auth.proxy]\nenabled = true"),
        "grafana.admin_user",
    ),
    ("grafana-admin-comment", section("grafana", admin_user="admin;x"), "grafana.admin_user"),
    ("grafana-binary-relative", section("grafana", binary="grafana"), "grafana.binary"),
    ("grafana-homepath-relative", section("grafana", homepath="share/grafana"), "grafana.homepath"),
    (
        "grafana-secret-brace",
        section("grafana", admin_password_file="/tmp/p}x"),
        "grafana.admin_password_file",
    ),
    (
        "prometheus-binary-relative",
        section("prometheus", binary="bin/prometheus"),
        "prometheus.binary",
    ),
    (
        "alertmanager-binary-relative",
        section("alertmanager", binary="./alertmanager"),
        "alertmanager.binary",
    ),
    (
        "webhook-header-injection",
        section("alertmanager", webhook_url="http://hook/\nX-Evil: 1"),
        "alertmanager.webhook_url",
    ),
    ("webhook-scheme", section("alertmanager", webhook_url="file:///etc/passwd"), "webhook_url"),
    (
        "web-config-relative",
        section("exporter", web_config_file="web.yml"),
        "exporter.web_config_file",
    ),
    (
        "textfile-dir-newline",
        section("exporter", textfile_directory="/a\n/b"),
        "exporter.textfile_directory",
    ),
    (
        "checkpoint-dir-newline",
        section("trainer", checkpoint_dir="ck\npt"),
        "trainer.checkpoint_dir",
    ),
    ("log-dir-equals", section("trainer", log_dir="a=b"), "trainer.log_dir"),
    ("cluster-name-newline", section("cluster", name="x\ny"), "cluster.name"),
    ("cluster-name-trailing-newline", section("cluster", name="x\n"), "cluster.name"),
    ("node-name-trailing-newline", node(name="mini-a\n"), "nodes[0].name"),
    ("address-trailing-newline", node(address="mini-a.local\n"), "nodes[0].address"),
]

BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 10)}]"
            for i in range(8)
        ),
    ]
).encode()

# (id, file content, words the one line must hold besides the file name)
UNREADABLE_FILES = [
    ("undecodable-bytes", b"cluster:\n  name: \xff\xfe\n", "not UTF-8"),
    ("nesting-bomb", b"nodes: " + b"[" * 10_000 + b"]" * 10_000 + b"\n", "nested deeper"),
    ("billion-laughs", BILLION_LAUGHS, "aliases expand"),
    ("recursive-alias", b"nodes: &a [*a]\n", "alias"),
    ("over-the-size-limit", b"#" * (MAX_FILE_BYTES + 1), "larger than"),
    ("top-level-list", b"- nodes\n", "top level"),
    ("duplicate-key", b"cluster: {}\ncluster: {}\n", "duplicate key"),
]


def write_yaml(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def check(path: Path, capsys) -> tuple[int, list[str], float]:
    """`minicluster config check PATH` in this process: exit code, stderr lines, seconds."""
    began = time.perf_counter()
    code = cli.main(["config", "check", str(path)])
    elapsed = time.perf_counter() - began
    captured = capsys.readouterr()
    return code, captured.err.splitlines(), elapsed


def test_the_base_config_is_accepted(tmp_path, capsys):
    code, err, _ = check(write_yaml(tmp_path, BASE), capsys)
    assert (code, err) == (0, [])


@pytest.mark.parametrize(
    ("change", "key"), [case[1:] for case in HOSTILE_VALUES], ids=[c[0] for c in HOSTILE_VALUES]
)
def test_hostile_value_is_one_line_naming_the_key(tmp_path, capsys, change, key):
    data = copy.deepcopy(BASE)
    change(data)
    path = write_yaml(tmp_path, data)
    code, err, elapsed = check(path, capsys)
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith(f"{path}: ") and key in err[0], err[0]
    assert "Traceback" not in err[0]
    assert elapsed < 1.0


@pytest.mark.parametrize(
    ("content", "words"),
    [case[1:] for case in UNREADABLE_FILES],
    ids=[c[0] for c in UNREADABLE_FILES],
)
def test_unreadable_file_is_one_line_naming_the_file(tmp_path, capsys, content, words):
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    code, err, elapsed = check(path, capsys)
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith(f"{path}: ") and words in err[0], err[0]
    assert elapsed < 1.0


def test_at_least_thirty_hostile_configs():
    assert len(HOSTILE_VALUES) + len(UNREADABLE_FILES) >= 30


def test_the_installed_command_prints_one_line_and_no_traceback(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(BILLION_LAUGHS)
    command = Path(sys.executable).with_name("minicluster")
    result = subprocess.run(
        [str(command), "config", "check", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"{path}: aliases expand to more than 100000 values"]


def test_an_ssh_option_as_user_never_reaches_ssh(tmp_path):
    data = copy.deepcopy(BASE)
    with pytest.raises(Exception, match="ssh_user"):
        node(ssh_user="-oProxyCommand=x")(data)
        parse_config(data, "config.yaml")
    # A valid user still goes after `--`, where ssh reads no options.
    config = load_config(write_yaml(tmp_path, BASE))
    argv = SshTarget.of(config.nodes[0]).openssh_argv("true")
    assert argv[-3:] == ["--", "admin@10.0.0.1", "true"]


@pytest.mark.parametrize(
    ("flag", "content", "words"),
    [
        ("--config", BILLION_LAUGHS, "aliases expand"),
        ("--config", b"\xff", "not UTF-8"),
        ("--web-config", b"basic_auth_users: " + b"{a: " * 100 + b"}" * 100, "nested deeper"),
        ("--web-config", b"basic_auth_users:\n  u: \xfe\n", "not UTF-8"),
    ],
)
def test_exporter_files_get_the_same_treatment(tmp_path, capsys, flag, content, words):
    path = tmp_path / "file.yml"
    path.write_bytes(content)
    code = exporter_cli.main([flag, str(path), "--listen", "127.0.0.1:0"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert len(err) == 1 and str(path) in err[0] and words in err[0], err
