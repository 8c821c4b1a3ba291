"""`minicluster undeploy [--purge] [--node NAME]`: boot out the services and remove what
deploy installed, on every node or on NAME only (the others are not connected to).

Left in place unless --purge: `<install_dir>/data` (Prometheus TSDB, Alertmanager and
Grafana state), `<install_dir>/logs`, and the trainer's checkpoint and log folders. With
--purge the whole install_dir goes.
"""

from __future__ import annotations

import contextlib
import shlex

from pyinfra.api import Host, State
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.operation import add_op
from pyinfra.api.operations import run_ops
from pyinfra.operations import server
from rich.console import Console

from minicluster.core import layout
from minicluster.core.config import Config, NodeSettings
from minicluster.deploy import services
from minicluster.deploy.facts import LaunchdService
from minicluster.deploy.inventory import build_state
from minicluster.deploy.run import connect
from minicluster.render.launchd import LABEL_PREFIX, exporter_label

MASTER_SERVICES = ("prometheus", "alertmanager", "grafana")


def plan_removal(state: State, host: Host, config: Config, purge: bool) -> list:
    node: NodeSettings = host.data.node
    sudo = {"_sudo": True} if node.ssh_user != "root" else {}
    ops = []

    def op(name: str, commands: list[str]) -> None:
        meta = add_op(state, server.shell, host=host, name=name, commands=commands, **sudo)
        ops.append((name, meta[host]))

    labels = [exporter_label()]
    if node.role == "master":
        labels += [LABEL_PREFIX + service for service in MASTER_SERVICES]
    for label in labels:
        job = host.get_fact(LaunchdService, label=label)
        commands = services.bootout_commands(label, job)
        commands.append(f"rm -f {shlex.quote(services.plist_path(label))}")
        op(f"{label}: boot out, remove plist", commands)
    paths = [node.install_dir] if purge else layout.deployed_paths(node)
    op(f"remove {', '.join(paths)}", ["rm -rf " + " ".join(shlex.quote(p) for p in paths)])
    return ops


def undeploy(config: Config, purge: bool, console: Console, node: str | None = None) -> int:
    targets = [config.node(node)] if node else config.nodes
    state = build_state(config.model_copy(update={"nodes": targets}))
    failures = {name: f"ssh: {error}" for name, error in connect(state).items()}
    hosts = [host for host in state.inventory if host.connected]
    ops = {host.name: plan_removal(state, host, config, purge) for host in hosts}
    with contextlib.suppress(PyinfraError):  # raised when every node failed; reported below
        run_ops(state)
    for host in hosts:
        for name, meta in ops[host.name]:
            if meta.is_complete() and meta.did_error():
                failures[host.name] = f"{name}: {(meta.stderr or meta.stdout).strip()}"
        if host.name not in failures:
            kept = "nothing kept" if purge else "data and logs kept"
            console.print(f"{host.name}: services booted out, files removed ({kept})")
    for name, error in failures.items():
        console.print(f"[red]{name}: undeploy failed:[/] {error}")
    if node and not failures:
        console.print(
            f"{node} is still in config.yaml: take it out and run `make deploy` so Prometheus "
            "stops scraping it"
        )
    return 1 if failures else 0
