"""One ssh target per node: pyinfra (deploy, doctor) and OpenSSH (the launcher) agree."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import paramiko
import pytest

from minicluster.core.config import NodeSettings
from minicluster.core.profiles import local_profile
from minicluster.core.ssh import SshTarget
from minicluster.deploy.inventory import build_state
from minicluster.launcher.remote import SshSettings


def _nodes(keys: Path) -> list[NodeSettings]:
    """With and without key, known_hosts and a custom port; a host name and addresses."""
    key, known = keys / "id_rsa", keys / "known_hosts"
    base = {"role": "worker", "ssh_user": "admin"}
    return [
        NodeSettings(name="plain", address="10.0.0.2", **base),
        NodeSettings(name="keyed", address="10.0.0.3", ssh_key=str(key), **base),
        NodeSettings(
            name="pinned",
            address="mini-blue.local",
            ssh_port=2222,
            ssh_key=str(key),
            ssh_known_hosts_file=str(known),
            **base,
        ),
        NodeSettings(
            name="known-only",
            address="10.0.0.5",
            ssh_port=2022,
            ssh_known_hosts_file=str(known),
            **base,
        ),
    ]


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """A real private key (pyinfra loads it) and a known_hosts file."""
    paramiko.RSAKey.generate(1024).write_private_key_file(str(tmp_path / "id_rsa"))
    (tmp_path / "known_hosts").write_text("")
    return tmp_path


def openssh_view(argv: list[str]) -> dict:
    """What an `ssh` argv asks for, read the way OpenSSH reads it."""
    dash = argv.index("--")
    options = dict(argv[i + 1].split("=", 1) for i in range(dash) if argv[i] == "-o")
    user, _, host = argv[dash + 1].rpartition("@")
    return {
        "user": user,
        "host": host,
        "port": int(argv[argv.index("-p") + 1]),
        "key": argv[argv.index("-i") + 1] if "-i" in argv[:dash] else None,
        "known_hosts": options.get("UserKnownHostsFile"),
        "strict": options["StrictHostKeyChecking"],
        "only_that_key": options.get("IdentitiesOnly") == "yes",
    }


def pyinfra_view(nodes: list[NodeSettings]) -> dict[str, dict]:
    """What pyinfra's ssh connector passes to paramiko for each node."""
    config = local_profile().model_copy(update={"nodes": nodes})
    views = {}
    for host in build_state(config).inventory:
        kwargs = host.connector.make_paramiko_kwargs()
        views[host.name] = {
            "user": kwargs["username"],
            "host": kwargs["hostname"],
            "port": kwargs["port"],
            "key": host.connector.data["ssh_key"] if "pkey" in kwargs else None,
            "known_hosts": kwargs["_pyinfra_ssh_known_hosts_file"],
            "strict": kwargs["_pyinfra_ssh_strict_host_key_checking"],
            "only_that_key": not kwargs["look_for_keys"] and not kwargs["allow_agent"],
        }
    return views


def test_pyinfra_and_openssh_reach_each_node_the_same_way(keys: Path):
    nodes = _nodes(keys)
    pyinfra = pyinfra_view(nodes)
    for node in nodes:
        openssh = openssh_view(SshTarget.of(node).openssh_argv("true"))
        assert openssh == pyinfra[node.name], node.name
    # What each setting means, said once.
    assert pyinfra["plain"]["strict"] == "accept-new" and pyinfra["plain"]["port"] == 22
    assert pyinfra["plain"]["key"] is None and pyinfra["plain"]["known_hosts"] is None
    assert pyinfra["pinned"] == {
        "user": "admin",
        "host": "mini-blue.local",
        "port": 2222,
        "key": str(keys / "id_rsa"),
        "known_hosts": str(keys / "known_hosts"),
        "strict": "yes",
        "only_that_key": True,
    }


def test_the_launchers_ssh_is_the_nodes_target_plus_its_own_options(keys: Path):
    node = _nodes(keys)[2]
    argv = SshSettings(config_file="/etc/ssh/other", options=("Compression=yes",)).argv(
        node, "echo hi"
    )
    assert argv[-3:] == ["--", "admin@mini-blue.local", "echo hi"]
    assert argv[argv.index("-F") + 1] == "/etc/ssh/other"
    assert openssh_view(argv) == pyinfra_view([node])["pinned"]
    # The node's own settings come first: OpenSSH keeps the first value it is given.
    assert argv.index("StrictHostKeyChecking=yes") < argv.index("Compression=yes")


def test_a_key_in_the_home_folder_is_expanded_for_both(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    node = NodeSettings(name="a", address="10.0.0.2", role="master", ssh_user="me",
                        ssh_key="~/.ssh/id", ssh_known_hosts_file="~/kh")  # fmt: skip
    target = SshTarget.of(node)
    assert target.key == f"{tmp_path}/.ssh/id"
    assert target.pyinfra_host_data()["ssh_key"] == target.key
    assert openssh_view(target.openssh_argv("true"))["known_hosts"] == f"{tmp_path}/kh"


@pytest.mark.integration
def test_openssh_reads_the_argv_as_meant(keys: Path):
    """`ssh -G` prints the settings ssh would use for an argv, without connecting."""
    ssh = shutil.which("ssh")
    if ssh is None:
        pytest.fail("ssh is not installed (openssh-client)")
    for node in _nodes(keys):
        argv = SshTarget.of(node).openssh_argv("true", ssh=ssh)
        printed = subprocess.run(
            [argv[0], "-G", "-F", "/dev/null", *argv[1:]],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        settings: dict[str, list[str]] = {}
        for line in printed.splitlines():
            key, _, value = line.partition(" ")
            settings.setdefault(key, []).append(value)
        expected = openssh_view(argv)
        assert settings["user"] == [expected["user"]]
        assert settings["hostname"] == [expected["host"]]
        assert settings["port"] == [str(expected["port"])]
        assert settings["stricthostkeychecking"] == [
            "true" if expected["strict"] == "yes" else expected["strict"]
        ]
        if expected["key"]:
            assert settings["identityfile"][0] == expected["key"]
            assert settings["identitiesonly"] == ["yes"]
        if expected["known_hosts"]:
            assert settings["userknownhostsfile"] == [expected["known_hosts"]]
