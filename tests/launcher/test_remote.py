"""How nodes are reached: the ssh command line, and rank files from a loopback node."""

from __future__ import annotations

import pytest

from minicluster.config import load_config
from minicluster.launcher.remote import LauncherError, SshSettings, fetch_rank_logs
from tests.launcher.conftest import loopback_config


def _options(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == "-o"]


def test_ssh_never_prompts_notices_a_dead_link_and_uses_the_nodes_key():
    node = (
        load_config("config.yaml")
        .nodes[1]
        .model_copy(
            update={
                "ssh_key": "/keys/minis",
                "ssh_known_hosts_file": "/keys/known",
                "ssh_port": 2222,
            }
        )
    )
    ssh = SshSettings(config_file="/etc/ssh_config", options=("Compression=yes",))
    argv = ssh.argv(node, "echo hi")
    assert argv[0].endswith("/ssh") and argv[0].startswith("/")
    assert argv[-2:] == ["admin@192.0.2.11", "echo hi"]
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[argv.index("-F") + 1] == "/etc/ssh_config"
    assert argv[argv.index("-i") + 1] == "/keys/minis"
    assert _options(argv) == [
        "BatchMode=yes",
        "ConnectTimeout=10",
        "ServerAliveInterval=5",
        "ServerAliveCountMax=3",
        "IdentitiesOnly=yes",
        "UserKnownHostsFile=/keys/known",
        "StrictHostKeyChecking=yes",
        "Compression=yes",
    ]


def test_a_missing_ssh_client_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    node = load_config("config.yaml").nodes[1]
    with pytest.raises(LauncherError, match="mini-yellow: ssh is not installed"):
        SshSettings().argv(node, "true")


def test_rank_files_of_a_loopback_node_are_copied(tmp_path):
    config = loopback_config(tmp_path / "state")
    source = tmp_path / "state" / "mini-red" / "logs" / "job-1"
    source.mkdir(parents=True)
    (source / "rank0.log").write_text("a\n")
    (source / "rank1.log").write_text("b\n")
    (source / "other.txt").write_text("not a rank log")
    copied = fetch_rank_logs(config.nodes[0], str(source), tmp_path / "out", SshSettings())
    assert [p.name for p in copied] == ["rank0.log", "rank1.log"]
    assert (tmp_path / "out" / "rank1.log").read_text() == "b\n"
