"""Where things live on a node: the one module that builds a path on a node.

Deploy and undeploy, the launchd plists and grafana.ini, the exporter, the trainer and the
launcher all ask here, so they agree by construction. Every path is a POSIX string on the
node (it is usually not a path on this machine).

<install_dir>/config.yaml          the cluster's config.yaml
<install_dir>/exporter.inputs      digest of the config the exporter reads (restart on change)
<install_dir>/venv/                the node's Python environment (bin/python runs everything)
<install_dir>/wheels/              the project wheel deploy installed into the venv
<install_dir>/run/                 discovery files the trainer's ranks drop for the exporter
<install_dir>/logs/                launchd's stdout/stderr files
<install_dir>/stack/               the tree `minicluster render` writes (master only)
<install_dir>/staging/             a new tree, checked there before it replaces stack/
<install_dir>/data/<service>       Prometheus TSDB, Alertmanager state, Grafana database
<install_dir>/secrets/             Grafana's admin password and secret key, mode 0600
<install_dir>/tls/                 (0700) ca.crt, node.crt, node.key and exporter-web.yml on
                                   every node; prometheus-client.crt/.key, web-password and
                                   web.yml (Prometheus' and Alertmanager's) on the master
<install_dir>/<trainer dirs>       trainer.checkpoint_dir and trainer.log_dir when relative
<install_dir>/jobs/<project>/tree  a user project shipped by run-job (see launcher/ship.py)
<install_dir>/jobs/<project>/env   that project's job environment, layered on the node venv
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TYPE_CHECKING

# Type names only: config.py asks this module for NodeSettings' paths, so importing
# config here at run time would be a cycle.
if TYPE_CHECKING:
    from minicluster.core.config import NodeSettings, TrainerSettings


def _under(node: NodeSettings, *parts: str) -> str:
    return str(PurePosixPath(node.install_dir, *parts))


# --- every node -------------------------------------------------------------------------------


def config_path(node: NodeSettings) -> str:
    return _under(node, "config.yaml")


def exporter_inputs_path(node: NodeSettings) -> str:
    return _under(node, "exporter.inputs")


def venv_dir(node: NodeSettings) -> str:
    return _under(node, "venv")


def venv_python(node: NodeSettings) -> str:
    """The interpreter every service and job on the node runs (by absolute path)."""
    return _under(node, "venv", "bin", "python")


def venv_origin_path(node: NodeSettings) -> str:
    """Which base interpreter the venv was made from (deploy remakes it when that changes)."""
    return _under(node, "venv", ".minicluster-python")


def venv_wheel_path(node: NodeSettings) -> str:
    """The sha256 of the project wheel installed in the venv."""
    return _under(node, "venv", ".minicluster-wheel")


def wheels_dir(node: NodeSettings) -> str:
    return _under(node, "wheels")


def wheel_path(node: NodeSettings, wheel_name: str) -> str:
    return _under(node, "wheels", wheel_name)


def run_dir(node: NodeSettings) -> str:
    """Where this node's trainer ranks drop their discovery files for the exporter."""
    return _under(node, "run")


def log_dir(node: NodeSettings) -> str:
    """launchd's stdout/stderr files of the node's services."""
    return _under(node, "logs")


def tls_dir(node: NodeSettings) -> str:
    """The node's certificates, key, web-config files and (master) the web password."""
    return _under(node, "tls")


def tls_path(node: NodeSettings, name: str) -> str:
    """A file in the node's tls folder: ca.crt, node.crt, node.key, exporter-web.yml, and on
    the master prometheus-client.crt/.key, web-password and web.yml."""
    return _under(node, "tls", name)


# --- the master's monitoring stack ----------------------------------------------------------


def stack_dir(node: NodeSettings) -> str:
    return _under(node, "stack")


def previous_stack_dir(node: NodeSettings) -> str:
    """The replaced tree, for the moment of the swap only."""
    return _under(node, "stack.old")


def staging_dir(node: NodeSettings) -> str:
    return _under(node, "staging")


def data_dir(node: NodeSettings, service: str) -> str:
    return _under(node, "data", service)


def secrets_dir(node: NodeSettings) -> str:
    return _under(node, "secrets")


def secret_path(node: NodeSettings, name: str) -> str:
    return _under(node, "secrets", name)


def deployed_paths(node: NodeSettings) -> list[str]:
    """What deploy puts into install_dir, except data and logs (undeploy removes these)."""
    paths = [venv_dir(node), wheels_dir(node), config_path(node), exporter_inputs_path(node),
             run_dir(node), tls_dir(node)]  # fmt: skip
    if node.role == "master":
        paths += [stack_dir(node), previous_stack_dir(node), staging_dir(node), secrets_dir(node)]
    return paths


# --- the trainer's folders ------------------------------------------------------------------


def resolve(node: NodeSettings, path: str) -> str:
    """A configured folder on `node`: relative ones are below its install_dir."""
    given = PurePosixPath(path)
    return str(given) if given.is_absolute() else _under(node, path)


def checkpoint_dir(node: NodeSettings, trainer: TrainerSettings) -> str:
    return resolve(node, trainer.checkpoint_dir)


def rank_log_dir(node: NodeSettings, trainer: TrainerSettings) -> str:
    """Where the trainer's ranks on `node` write `<job_id>/rank<N>.log`."""
    return resolve(node, trainer.log_dir)


def job_log_dir(node: NodeSettings, trainer: TrainerSettings, job_id: str) -> str:
    return str(PurePosixPath(rank_log_dir(node, trainer), job_id))


# --- user projects (run-job --workdir) ------------------------------------------------------


def jobs_dir(node: NodeSettings) -> str:
    return _under(node, "jobs")


def workdir_dir(node: NodeSettings, project_key: str) -> str:
    """The node's copy of a user project (run-job's --workdir)."""
    return f"{jobs_dir(node)}/{project_key}/tree"


def jobenv_dir(node: NodeSettings, project_key: str) -> str:
    """The project's job environment: a venv whose .pth files name the node venv and tree."""
    return f"{jobs_dir(node)}/{project_key}/env"


# --- benchmarks (minicluster bench across the nodes) -----------------------------------------


def bench_dir(node: NodeSettings, kind: str) -> str:
    """Where a bench run's trainer keeps its `checkpoints`, `logs` or `run` folder."""
    return _under(node, "bench", kind)
