"""Where things live on a node, in one place (deploy, launchd plists and grafana.ini agree).

<install_dir>/config.yaml          the cluster's config.yaml
<install_dir>/stack/               the tree `minicluster render` writes (master only)
<install_dir>/data/<service>       Prometheus TSDB, Alertmanager state, Grafana database
<install_dir>/secrets/             Grafana's admin password and secret key, mode 0600
<install_dir>/logs/                launchd's stdout/stderr files
<install_dir>/jobs/<project>/tree  a user project shipped by run-job (see launcher/ship.py)
<install_dir>/jobs/<project>/env   that project's job environment, layered on the node venv
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


def jobs_dir(node: NodeSettings) -> str:
    return f"{node.install_dir}/jobs"


def workdir_dir(node: NodeSettings, project_key: str) -> str:
    """The node's copy of a user project (run-job's --workdir)."""
    return f"{jobs_dir(node)}/{project_key}/tree"


def jobenv_dir(node: NodeSettings, project_key: str) -> str:
    """The project's job environment: a venv whose .pth files name the node venv and tree."""
    return f"{jobs_dir(node)}/{project_key}/env"
