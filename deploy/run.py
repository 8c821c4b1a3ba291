"""The deploy driver: build once, connect, plan every node, dry-run or run, verify, report."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

import gevent
from pyinfra.api import BaseStateCallback, Host, State
from pyinfra.api.connect import connect_all
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.operations import run_ops
from pyinfra.context import ctx_state
from rich.console import Console

from minicluster.core.config import Config, ConfigError
from minicluster.deploy.inventory import build_state
from minicluster.deploy.plan import HostPlan, PlanError, plan_host
from minicluster.deploy.stack import Stack, StackError, render_stack
from minicluster.deploy.verify import MasterProbe, VerifyError, last_reload_timestamp, verify
from minicluster.deploy.wheel import WheelBuildError, build_wheel, existing_wheel
from minicluster.security.pki import ensure_pki

# pyinfra logs every step; the deploy prints its own summary (and every failure's output).
logging.getLogger("pyinfra").setLevel(logging.CRITICAL)


class ConnectErrors(BaseStateCallback):
    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def host_connect_error(self, state: State, host: Host, error) -> None:  # type: ignore[override]
        self.errors[host.name] = str(error.args[0] if error.args else error)


def connect(state: State) -> dict[str, str]:
    """Connect to every node in parallel; node name -> error for those that failed."""
    errors = ConnectErrors()
    state.add_callback_handler(errors)
    with contextlib.suppress(PyinfraError):  # raised when no node is reachable
        connect_all(state)
    for host in state.inventory:
        if not host.connected and host.name not in errors.errors:
            errors.errors[host.name] = "could not connect"
    return errors.errors


def _fail(state: State, host: Host) -> None:
    with contextlib.suppress(PyinfraError):  # raised for the last node; reported by the caller
        state.fail_hosts({host})


def deploy(config: Config, dry_run: bool, console: Console, wheel_file: Path | None = None) -> int:
    """Deploy `config` to its nodes; 0 when everything is installed and verified.

    `wheel_file` deploys that wheel instead of building one from this checkout.
    """
    pki = None
    if config.security.tls:
        try:  # once per deploy, on this machine: what exists is reused, what is due made
            pki = ensure_pki(config)
        except ConfigError as exc:
            console.print(f"[red]error:[/] {exc}")
            return 2
        console.print(f"cluster CA, certificates and web password in {pki.root}")
    try:
        rendered = render_stack(config, pki)
    except StackError as exc:
        console.print(f"[red]error:[/] rendered file rejected: {exc}")
        return 1
    except ConfigError as exc:  # a PKI file gone since ensure_pki: one line, as for config
        console.print(f"[red]error:[/] {exc}")
        return 2
    with tempfile.TemporaryDirectory(prefix="minicluster-deploy-") as tmp:
        try:
            wheel = existing_wheel(wheel_file) if wheel_file else build_wheel(Path(tmp))
        except WheelBuildError as exc:
            console.print(f"[red]error:[/] {exc}")
            return 1
        how = "given" if wheel_file else "built once"
        console.print(f"{wheel.name} (sha256 {wheel.sha256[:12]}) {how} for every node")
        state = build_state(config)
        failures = {name: f"ssh: {error}" for name, error in connect(state).items()}
        plans: dict[str, HostPlan] = {}

        def plan(host: Host) -> None:
            try:
                plans[host.name] = plan_host(state, host, config, config.to_yaml(), wheel, rendered)
            except PlanError as exc:
                failures[host.name] = str(exc)
                _fail(state, host)

        # Facts are read from every node at once. pyinfra's current host is greenlet-local,
        # its current state is not: set it once around all greenlets, so no add_op resets it.
        with ctx_state.use(state):
            greenlets = [gevent.spawn(plan, host) for host in state.inventory if host.connected]
            gevent.joinall(greenlets, raise_error=True)
        plans = {node.name: plans[node.name] for node in config.nodes if node.name in plans}
        if dry_run:
            return report_dry_run(state, plans, failures, console)
        return execute(state, config, rendered, plans, failures, console)


def report_dry_run(
    state: State, plans: dict[str, HostPlan], failures: dict[str, str], console: Console
) -> int:
    console.print("[bold]dry run[/]: nothing is changed")
    for name, plan in plans.items():
        changes = [op_name for op_name, meta in plan.ops if meta.will_change]
        if changes:
            console.print(f"[bold]{name}[/]: would change:")
            for op_name in changes:
                console.print(f"  - {op_name}")
        else:
            console.print(f"[bold]{name}[/]: no changes")
        for note in plan.notes:
            console.print(f"  note: {note}")
    for name, error in failures.items():
        console.print(f"[red]{name}: cannot deploy:[/] {error}")
    return 1 if failures else 0


def execute(
    state: State,
    config: Config,
    rendered: Stack,
    plans: dict[str, HostPlan],
    failures: dict[str, str],
    console: Console,
) -> int:
    master = plans.get(config.master.name)
    probe = MasterProbe(master.host, config.master.python) if master else None
    reload_before = None
    if master and master.service_action("prometheus").startswith("reload"):
        reload_before = last_reload_timestamp(probe, config) or 0.0
    with contextlib.suppress(PyinfraError):  # raised when every node failed; reported below
        run_ops(state)
    unchanged = []
    for name, plan in plans.items():
        done = [(op_name, meta) for op_name, meta in plan.ops if meta.is_complete()]
        changed = [op_name for op_name, meta in done if meta.did_change()]
        failed = [(op_name, meta) for op_name, meta in done if meta.did_error()]
        if not changed:
            unchanged.append(name)
        else:
            console.print(f"[bold]{name}[/]: changed:")
            for op_name in changed:
                console.print(f"  - {op_name}")
        for note in plan.notes:
            console.print(f"[bold]{name}[/]: note: {note}")
        for op_name, meta in failed:
            output = (meta.stderr or meta.stdout).strip()
            failures[name] = f"{op_name} failed:\n{output}"
    # Said per node: a node that joins changes only itself and the master's Prometheus.
    unchanged = [name for name in unchanged if name not in failures]
    if unchanged:
        console.print(f"No changes: {', '.join(unchanged)} already up to date")
    if master and config.master.name not in failures:
        try:
            confirmed = verify(
                probe,
                config,
                rendered,
                grafana_present=master.grafana_present,
                reload_before=reload_before,
            )
        except VerifyError as exc:
            failures[config.master.name + " (verify)"] = str(exc)
        else:
            for line in confirmed:
                console.print(f"verified: {line}")
    for name, error in failures.items():
        console.print(f"[red]{name}: deploy failed:[/] {error}")
    return 1 if failures else 0
