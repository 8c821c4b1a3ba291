"""Where things live on a node, in one place (deploy, launchd plists and grafana.ini agree).

<install_dir>/config.yaml          the cluster's config.yaml
<install_dir>/stack/               the tree `minicluster render` writes (master only)
<install_dir>/data/<service>       Prometheus TSDB, Alertmanager state, Grafana database
<install_dir>/secrets/             Grafana's admin password and secret key, mode 0600
<install_dir>/logs/                launchd's stdout/stderr files
"""

from __future__ import annotations

from minicluster.core.config import NodeSettings


def config_path(node: NodeSettings) -> str:
    return f"{node.install_dir}/config.yaml"


def stack_dir(node: NodeSettings) -> str:
    return f"{node.install_dir}/stack"


def data_dir(node: NodeSettings, service: str) -> str:
    return f"{node.install_dir}/data/{service}"


def secrets_dir(node: NodeSettings) -> str:
    return f"{node.install_dir}/secrets"


def log_dir(node: NodeSettings) -> str:
    return f"{node.install_dir}/logs"
