"""The configuration model's rules that the CLI tests do not reach."""

from __future__ import annotations

import pytest

from minicluster.core.config import ConfigError, key_path
from minicluster.core.profiles import local_profile


def test_local_profile_is_two_nodes_on_this_machine(tmp_path):
    config = local_profile(tmp_path)
    red, yellow = config.nodes
    assert (red.name, red.role, yellow.name, yellow.role) == (
        "mini-red",
        "master",
        "mini-yellow",
        "worker",
    )
    assert red.address == yellow.address == "127.0.0.1"
    assert red.install_dir == str(tmp_path / "mini-red")
    assert yellow.run_dir == str(tmp_path / "mini-yellow" / "run")
    # Same host, so every port must differ between the two "nodes".
    ports = [red.exporter_port, yellow.exporter_port, *config.rank_ports(red)]
    ports += [*config.rank_ports(yellow)]
    assert len(set(ports)) == len(ports)
    assert config.world_size == 2


def test_nodes_sharing_loopback_share_one_port_space(tmp_path):
    with pytest.raises(ConfigError) as err:
        local_profile(tmp_path, trainer={"nproc_per_node": 11})
    # mini-red's ranks 9400..9410 run into mini-yellow's base port 9410.
    assert str(err.value) == (
        "<local profile>: nodes[1].metrics_base_port: 9410 is already used by "
        "trainer local rank 10 on mini-red"
    )


def test_section_overrides_reach_the_profile(tmp_path):
    config = local_profile(tmp_path, trainer={"steps": 30, "nproc_per_node": 2})
    assert config.trainer.steps == 30
    assert config.world_size == 4
    assert list(config.rank_ports(config.node("mini-yellow"))) == [9410, 9411]


def test_relative_trainer_dirs_are_below_install_dir(tmp_path):
    config = local_profile(tmp_path)
    node = config.node("mini-yellow")
    assert config.trainer.resolve_dir("checkpoints", node) == f"{node.install_dir}/checkpoints"
    assert config.trainer.resolve_dir("/var/ckpt", node) == "/var/ckpt"


def test_unknown_node_lookup_names_the_known_ones(tmp_path):
    with pytest.raises(KeyError, match="config has: mini-red, mini-yellow"):
        local_profile(tmp_path).node("mini-blue")


@pytest.mark.parametrize(
    ("loc", "text"),
    [
        (("nodes", 1, "exporter_port"), "nodes[1].exporter_port"),
        (("trainer", "steps"), "trainer.steps"),
        (("nodes",), "nodes"),
    ],
)
def test_key_path(loc, text):
    assert key_path(loc) == text


def test_security_is_on_by_default_and_off_in_the_local_profile(tmp_path):
    from minicluster.core.config import parse_config

    node = {"name": "mini-red", "address": "10.0.0.2", "role": "master", "ssh_user": "admin"}
    config = parse_config({"nodes": [node]}, "c.yaml")
    assert config.security.tls is True
    assert config.security.pki_dir == "~/.config/minicluster/pki"
    assert local_profile(tmp_path).security.tls is False
    assert local_profile(tmp_path, security={"tls": True}).security.tls is True


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        ({"tls": "maybe"}, "security.tls: Input should be a valid boolean"),
        ({"pki_dir": "/tmp/pki\nx"}, "security.pki_dir: '/tmp/pki\\nx' must be one line"),
        ({"pki_dir": "  "}, "security.pki_dir: must not be empty"),
        ({"ca": "x"}, "security.ca: unknown key"),
    ],
)
def test_bad_security_section_is_one_line(section, reason):
    from minicluster.core.config import parse_config

    node = {"name": "mini-red", "address": "10.0.0.2", "role": "master", "ssh_user": "admin"}
    with pytest.raises(ConfigError) as err:
        parse_config({"nodes": [node], "security": section}, "c.yaml")
    assert str(err.value).startswith(f"c.yaml: {reason}")
