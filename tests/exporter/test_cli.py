"""`python -m minicluster.exporter` and `minicluster exporter` as users run them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest
import yaml

from minicluster.core import discovery
from minicluster.core.config import ConfigError, parse_config
from minicluster.exporter import options as opts
from tests.exporter.conftest import get, samples, value
from tests.support import free_port


def write_config(tmp_path, exporter: dict | None = None, **node_overrides) -> tuple:
    red, yellow = free_port(), free_port()
    data = {
        "cluster": {"name": "test"},
        "nodes": [
            {
                "name": "mini-red",
                "address": "127.0.0.1",
                "role": "master",
                "ssh_user": "test",
                "install_dir": str(tmp_path / "red"),
                "exporter_port": red,
                **node_overrides,
            },
            {
                "name": "mini-yellow",
                "address": "127.0.0.1",
                "role": "worker",
                "ssh_user": "test",
                "install_dir": str(tmp_path / "yellow"),
                "exporter_port": yellow,
                "metrics_base_port": 9410,
            },
        ],
        "exporter": exporter or {},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, red, yellow


def run_cli(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "minicluster.exporter", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=cwd,
    )


def test_no_config_file_uses_defaults_and_the_default_run_dir(exporter_process, tmp_path):
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    run_dir = tmp_path / "state" / "minicluster" / "run"
    entry = discovery.RankEntry("solo", 0, 0, "here", "127.0.0.1:9400", os.getpid())
    discovery.register(run_dir, entry)
    _, url = exporter_process("--listen", "127.0.0.1:0", env=env)
    text = get(url + "/metrics").text
    assert value(text, "node_scrape_collector_success", collector="cpu") == 1
    assert value(text, "minicluster_peer_up", peer="mini-yellow") is None  # no peers
    assert get(url + "/sd").json()[0]["labels"]["job_id"] == "solo"


def test_default_options_without_a_config():
    options = opts.defaults()
    assert (options.listen_host, options.listen_port) == ("127.0.0.1", 9100)
    assert options.node == socket.gethostname().split(".")[0].lower()
    assert options.peers == ()
    assert options.run_dir.endswith("/minicluster/run")


def test_config_file_gives_address_port_peers_and_disabled_collectors(exporter_process, tmp_path):
    config, red, _ = write_config(tmp_path, exporter={"disabled_collectors": ["diskstats"]})
    _, red_url = exporter_process(
        "--config", str(config), "--node", "mini-red", "--collector.disable", "uname"
    )
    assert red_url == f"http://127.0.0.1:{red}"
    text = get(red_url + "/metrics").text
    parsed = samples(text)
    collectors = {
        dict(labels)["collector"]
        for name, labels in parsed
        if name == "node_scrape_collector_success"
    }
    assert "diskstats" not in collectors and "uname" not in collectors
    assert "cpu" in collectors and "peers" in collectors
    assert value(parsed, "minicluster_peer_up", peer="mini-yellow") == 0  # not running yet

    exporter_process("--config", str(config), "--node", "mini-yellow")
    text = get(red_url + "/metrics").text
    assert value(text, "minicluster_peer_up", peer="mini-yellow") == 1
    assert 0 < value(text, "minicluster_peer_rtt_seconds", peer="mini-yellow") < 0.5
    assert value(text, "minicluster_peer_up", peer="mini-red") is None  # never itself


def test_listen_flag_overrides_the_config(exporter_process, tmp_path):
    config, _, _ = write_config(tmp_path)
    port = free_port()
    _, url = exporter_process(
        "--config", str(config), "--node", "mini-red", "--listen", f"127.0.0.1:{port}"
    )
    assert url == f"http://127.0.0.1:{port}"


def test_sigterm_stops_it_cleanly(exporter_process):
    process, url = exporter_process("--listen", "127.0.0.1:0")
    assert get(url + "/-/healthy").status_code == 200
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config", "missing.yaml"], "missing.yaml: no such file"),
        (["--collector.disable", "bogus"], "unknown collector 'bogus'"),
        (["--listen", "9100"], "expected HOST:PORT"),
        (["--listen", ":9100"], "give the address to bind"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_node_must_be_named_when_the_host_is_ambiguous(tmp_path):
    config, _, _ = write_config(tmp_path)  # both nodes on 127.0.0.1
    result = run_cli("--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "pass one of: mini-red, mini-yellow" in result.stderr
    result = run_cli("--config", str(config), "--node", "mini-blue", cwd=tmp_path)
    assert result.returncode == 2 and "no node named 'mini-blue'" in result.stderr


def test_port_in_use_exits_1(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_cli("--listen", f"127.0.0.1:{port}", cwd=tmp_path)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_textfile_directory_from_config_or_flag(tmp_path, monkeypatch):
    from minicluster.exporter import cli

    config_path, _, _ = write_config(tmp_path, exporter={"textfile_directory": "/srv/prom"})
    config = parse_config(yaml.safe_load(config_path.read_text()), str(config_path))
    args = cli.build_parser().parse_args(["--node", "mini-red"])
    assert cli.resolve_options(args, config, "c").textfile_directory == "/srv/prom"
    monkeypatch.chdir(tmp_path)
    args = cli.build_parser().parse_args(
        ["--node", "mini-red", "--collector.textfile.directory", "textfiles"]
    )
    # The flag wins, and a relative path is taken from where the command was typed.
    assert cli.resolve_options(args, config, "c").textfile_directory == str(tmp_path / "textfiles")
    assert cli.resolve_options(args, None, "").textfile_directory == str(tmp_path / "textfiles")


def test_bad_textfile_directory_is_one_line_and_exit_2(tmp_path):
    config, _, _ = write_config(tmp_path, exporter={"textfile_directory": "relative/dir"})
    result = run_cli("--config", str(config), "--node", "mini-red", cwd=tmp_path)
    assert result.returncode == 2
    assert "exporter.textfile_directory" in result.stderr and "absolute path" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = run_cli("--collector.textfile.directory", "/a\nb", cwd=tmp_path)
    assert result.returncode == 2
    assert "--collector.textfile.directory" in result.stderr and "single line" in result.stderr


def test_unknown_disabled_collector_in_config_is_a_config_error(tmp_path):
    config, _, _ = write_config(tmp_path, exporter={"disabled_collectors": ["cpus"]})
    result = run_cli("--config", str(config), "--node", "mini-red", cwd=tmp_path)
    assert result.returncode == 2
    assert "exporter.disabled_collectors: unknown collector 'cpus'" in result.stderr


def test_node_is_found_by_its_local_address(monkeypatch):
    base = {"role": "worker", "ssh_user": "u"}
    config = parse_config(
        {
            "nodes": [
                {**base, "name": "mini-red", "address": "192.0.2.10", "role": "master"},
                {**base, "name": "mini-yellow", "address": "192.0.2.11"},
            ]
        },
        "test",
    )
    monkeypatch.setattr(opts, "short_hostname", lambda: "some-mac")
    monkeypatch.setattr(opts, "_local_addresses", lambda: {"127.0.0.1", "192.0.2.11"})
    assert opts.pick_node(config, None, "test").name == "mini-yellow"
    monkeypatch.setattr(opts, "short_hostname", lambda: "mini-red")
    assert opts.pick_node(config, None, "test").name == "mini-red"
    monkeypatch.setattr(opts, "short_hostname", lambda: "other")
    monkeypatch.setattr(opts, "_local_addresses", lambda: {"127.0.0.1"})
    with pytest.raises(ConfigError, match="cannot tell which node"):
        opts.pick_node(config, None, "test")


def test_options_from_config(tmp_path):
    config_path, red, yellow = write_config(
        tmp_path,
        exporter={
            "collector_timeout_seconds": 1.5,
            "max_concurrent_scrapes": 7,
            "peer_probe_timeout_seconds": 0.25,
            "web_config_file": "/etc/minicluster/web.yml",
        },
    )
    from minicluster.core.config import load_config

    config = load_config(config_path)
    options = opts.from_config(config, config.node("mini-red"))
    assert (options.listen_host, options.listen_port) == ("127.0.0.1", red)
    assert [(p.name, p.port) for p in options.peers] == [("mini-yellow", yellow)]
    assert options.run_dir == str(tmp_path / "red" / "run")
    assert options.collector_timeout_seconds == 1.5
    assert options.max_concurrent_scrapes == 7
    assert options.peer_probe_timeout_seconds == 0.25
    assert options.web_config_file == "/etc/minicluster/web.yml"


def test_minicluster_exporter_command(tmp_path):
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "minicluster",
            "exporter",
            "--local",
            "--node",
            "mini-yellow",
            "--listen",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = process.stdout.readline()
        assert "node mini-yellow listening on http://127.0.0.1:" in line, process.stderr.read()
        url = line.rsplit(" ", 1)[1].strip()
        text = get(url + "/metrics").text
        # The local profile's other node is mini-red (its port may be anyone's here, so
        # only the presence of the probe is asserted; test_config_file... checks values).
        assert value(text, "minicluster_peer_up", peer="mini-red") in (0.0, 1.0)
        assert value(text, "node_scrape_collector_success", collector="peers") == 1
    finally:
        process.terminate()
        process.wait(10)


def test_minicluster_exporter_bad_node_is_exit_2(capsys):
    from minicluster.cli import main

    assert main(["exporter", "--local", "--node", "nope"]) == 2
    assert "no node named 'nope'" in capsys.readouterr().err
