"""The pyinfra inventory, built from config.yaml's nodes: there is no second host list."""

from __future__ import annotations

from pathlib import Path

from pyinfra.api import Config as PyinfraConfig
from pyinfra.api import Inventory, State

from minicluster.core.config import Config, NodeSettings

CONNECT_TIMEOUT_SECONDS = 10


def host_data(node: NodeSettings) -> dict:
    """pyinfra's ssh connector settings for one node, plus the node itself as `node`."""
    data: dict = {
        "node": node,
        "ssh_hostname": node.address,
        "ssh_port": node.ssh_port,
        "ssh_user": node.ssh_user,
    }
    if node.ssh_key:
        data["ssh_key"] = str(Path(node.ssh_key).expanduser())
        data["ssh_look_for_keys"] = False  # only the configured key
    if node.ssh_known_hosts_file:
        # A known_hosts file named in the config is the trust anchor: no trust on first use.
        data["ssh_known_hosts_file"] = str(Path(node.ssh_known_hosts_file).expanduser())
        data["ssh_strict_host_key_checking"] = "yes"
    return data


def build_inventory(config: Config) -> Inventory:
    hosts = [(node.name, host_data(node)) for node in config.nodes]
    groups = {
        role: ([node.name for node in config.nodes if node.role == role], {})
        for role in ("master", "worker")
    }
    return Inventory((hosts, {}), **groups)


def build_state(config: Config) -> State:
    """A pyinfra State for the cluster; any failing node is reported, never fatal to others."""
    settings = PyinfraConfig(CONNECT_TIMEOUT=CONNECT_TIMEOUT_SECONDS, FAIL_PERCENT=None)
    state = State(inventory=build_inventory(config), config=settings)
    return state
