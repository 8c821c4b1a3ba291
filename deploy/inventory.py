"""The pyinfra inventory, built from config.yaml's nodes: there is no second host list."""

from __future__ import annotations

from pyinfra.api import Config as PyinfraConfig
from pyinfra.api import Inventory, State

from minicluster.core.config import Config, NodeSettings
from minicluster.core.ssh import CONNECT_TIMEOUT_SECONDS, SshTarget


def host_data(node: NodeSettings) -> dict:
    """pyinfra's ssh connector settings for one node, plus the node itself as `node`."""
    return {"node": node, **SshTarget.of(node).pyinfra_host_data()}


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
