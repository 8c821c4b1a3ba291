"""How nodes are reached: the ssh command line, starting and stopping by PID, rank files
and clocks, through a stand-in `ssh` that runs the remote command on this machine."""

from __future__ import annotations

import os
import queue
import sys
from pathlib import Path

import psutil
import pytest

from minicluster.core.config import load_config
from minicluster.launcher.clock import measure
from minicluster.launcher.plan import NodeCommand
from minicluster.launcher.remote import (
    LauncherError,
    NodeProcess,
    SshSettings,
    fetch_rank_logs,
)
from tests.launcher.conftest import loopback_config
from tests.support import EXAMPLE_CONFIG, wait_until


def _options(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == "-o"]


def test_ssh_never_prompts_notices_a_dead_link_and_uses_the_nodes_key():
    node = (
        load_config(EXAMPLE_CONFIG)
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
    node = load_config(EXAMPLE_CONFIG).nodes[1]
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


# --- the ssh code paths, with an `ssh` that runs the remote command on this machine ----------

FAKE_SSH = """#!/bin/sh
# Test stand-in for ssh: run the last argument (the remote command) with sh, here.
for last; do :; done
exec sh -c "$last"
"""


@pytest.fixture
def fake_ssh(tmp_path, monkeypatch):
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(FAKE_SSH)
    (bin_dir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def _remote_node(tmp_path: Path):
    """A node that is not loopback (so it is reached "over ssh"), whose venv is this one."""
    install = tmp_path / "node"
    install.mkdir()
    (install / "venv").symlink_to(sys.prefix)  # this test run's venv
    node = load_config(EXAMPLE_CONFIG).nodes[1]
    return node.model_copy(update={"install_dir": str(install)})


def test_a_remote_node_is_started_and_stopped_by_the_pid_its_shell_printed(tmp_path, fake_ssh):
    node = _remote_node(tmp_path)
    # A stand-in for torchrun: a parent with a child in its own session, like its workers.
    script = (
        "import subprocess, sys, time; print('hello', flush=True); "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], "
        "start_new_session=True); time.sleep(600)"
    )
    command = NodeCommand(node, [sys.executable, "-c", script, "job-77"], {"X_TEST": "1"})
    output: queue.Queue = queue.Queue()
    process = NodeProcess(command, "job-77", output, SshSettings())
    process.start()
    assert output.get(timeout=30)[:2] == ("mini-yellow", "hello")  # the PID line is not output
    torchrun = psutil.Process(process.pid)
    assert "job-77" in " ".join(torchrun.cmdline())
    assert torchrun.environ()["X_TEST"] == "1"  # the env went through /usr/bin/env
    tree = [torchrun, *wait_until(lambda: torchrun.children(), "the stand-in's child")]
    message = process.stop(grace=1)
    # The child, in a session of its own, outlives its parent's SIGTERM: it needs SIGKILL.
    assert message == f"mini-yellow: stopped PID {process.pid} and 1 children (1 needed SIGKILL)"
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree)
    assert process.reachable and not process.connection_lost


def test_rank_files_come_back_through_tar_over_ssh(tmp_path, fake_ssh):
    node = _remote_node(tmp_path)
    source = tmp_path / "remote-logs" / "job-1"
    source.mkdir(parents=True)
    (source / "rank1.log").write_text("one\n")
    (source / "rank3.log").write_text("three\n")
    copied = fetch_rank_logs(node, str(source), tmp_path / "here", SshSettings())
    assert [p.name for p in copied] == ["rank1.log", "rank3.log"]
    assert (tmp_path / "here" / "rank3.log").read_text() == "three\n"
    with pytest.raises(LauncherError, match=r"mini-yellow: cannot fetch .*job-2"):
        fetch_rank_logs(node, str(tmp_path / "remote-logs" / "job-2"), tmp_path, SshSettings())


def test_the_clock_of_a_node_is_read_over_ssh(tmp_path, fake_ssh):
    offset = measure(_remote_node(tmp_path), SshSettings())
    # The same clock on both ends: the estimate is within its own round trip of zero.
    assert offset.node == "mini-yellow"
    assert abs(offset.seconds) <= offset.rtt / 2 + 0.001
    assert offset.rtt < 1
