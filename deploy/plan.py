"""The operations for one node: read its state (pyinfra facts), add only what must change.

Every node: Homebrew checked (it is what makes a node a Mac this deploy installs onto),
the venv made from `node.python`, exactly the control machine's wheel installed into it
(and imported the way launchd will run it), with security.tls its certificates and keys
in `<install_dir>/tls` (0700), config.yaml, the exporter LaunchDaemon, the exporter
(re)started only if something it reads changed. The master also: Prometheus,
Alertmanager and Grafana from Homebrew (those the config expects at Homebrew's paths; a
binary configured elsewhere must already be there), the rendered stack checked before it
replaces the live one, their LaunchDaemons, and a reload (SIGHUP) rather than a restart
when only their configuration or TLS files changed.

Decisions are made here, once, from the facts read at plan time; the operations that get
added are the changes. A dry run prints them; a real run executes them.
"""

from __future__ import annotations

import hashlib
import json
import plistlib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from io import BytesIO, StringIO
from pathlib import PurePosixPath

import yaml
from pyinfra.api import Host, State
from pyinfra.api.operation import add_op
from pyinfra.facts.files import Directory
from pyinfra.operations import brew, files, server

from minicluster.core import layout
from minicluster.core.config import Config, NodeSettings
from minicluster.deploy import services, stack
from minicluster.deploy.facts import Executable, LaunchdService, TextFile, TreeDigest
from minicluster.deploy.wheel import Wheel, install_commands
from minicluster.render import newsyslog
from minicluster.render.bundle import PRIVATE
from minicluster.render.launchd import LABEL_PREFIX, exporter_label
from minicluster.render.webconfig import EXPORTER_WEB_CONFIG

HOMEBREW_PATHS = ("/opt/homebrew/bin/brew", "/usr/local/bin/brew")  # Apple Silicon, Intel
HOMEBREW_FORMULAE = {
    "prometheus": "prometheus",
    "alertmanager": "alertmanager",
    "grafana": "grafana",
}
# launchd loads a LaunchDaemon only from a root-owned plist; macOS's group for gid 0.
ROOT_GROUP = "wheel"
# What the exporter reads from config.yaml; other sections never restart it.
EXPORTER_SECTIONS = ("cluster", "nodes", "exporter")
# The files of the node's tls folder the exporter reads at start (its web-config and what
# that names); the master's other ones (web.yml, Prometheus' client key) never restart it.
EXPORTER_TLS_FILES = ("ca.crt", "node.crt", "node.key", EXPORTER_WEB_CONFIG)


class PlanError(RuntimeError):
    """This node cannot be deployed as it is; the message says what to do."""


@dataclass
class HostPlan:
    host: Host
    node: NodeSettings
    services: dict[str, str] = field(default_factory=dict)  # label -> what happens to it
    stack_changes: list[str] = field(default_factory=list)  # stack files that change
    notes: list[str] = field(default_factory=list)  # skipped parts, said plainly
    grafana_present: bool = False
    ops: list = field(default_factory=list)  # (name, pyinfra OperationMeta), in order

    def service_action(self, service: str) -> str:
        return self.services.get(LABEL_PREFIX + service, "")


def exporter_inputs(config: Config, tls_files: Mapping[str, bytes] | None = None) -> str:
    """A digest of what the exporter reads at start: when it changes, restart it.

    `tls_files` (remote path -> content) are the node's TLS files; those the exporter reads
    count by their digest. Without them the digest is the config's alone, as before TLS."""
    data = {key: config.model_dump(mode="json")[key] for key in EXPORTER_SECTIONS}
    tls = {
        PurePosixPath(path).name: hashlib.sha256(content).hexdigest()
        for path, content in (tls_files or {}).items()
        if PurePosixPath(path).name in EXPORTER_TLS_FILES
    }
    if tls:
        data["tls"] = tls
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest() + "\n"


def octal_mode(mode: int | str) -> str:
    """pyinfra's mode string ("600") from 0o600 or "600"."""
    return format(mode, "o") if isinstance(mode, int) else mode.removeprefix("0o")


def node_view(config: Config, node: NodeSettings) -> Config:
    """The config installed on `node`: the whole cluster on the master; on a worker, the
    master and itself only. A worker reads its own entry (exporter, ranks) and probes the
    master; listing no other worker is what lets nodes join or leave without touching the
    workers already running (no new config.yaml, no exporter restart)."""
    if node.role == "master":
        return config
    return config.model_copy(update={"nodes": [config.master, node]})


def departed_notes(installed_config: str, config: Config) -> list[str]:
    """What to tell about nodes the master's installed config.yaml lists and `config` does
    not: Prometheus stops scraping them, their own services keep running until undeployed."""
    try:
        installed = yaml.safe_load(installed_config) or {}
        names = [entry["name"] for entry in installed.get("nodes", [])]
    except (yaml.YAMLError, AttributeError, KeyError, TypeError):
        return []  # not a config this deploy wrote: nothing to compare
    kept = {node.name for node in config.nodes}
    return [
        f"{name} left config.yaml: Prometheus no longer scrapes it, but its exporter still "
        f"runs there; remove it with `make undeploy NODE={name} CONFIG=<a config that still "
        "lists it>`"
        for name in names
        if name not in kept
    ]


def homebrew_formula(python: str) -> str | None:
    """`/opt/homebrew/bin/python3.12` -> `python@3.12` (the pinned Homebrew Python)."""
    name = PurePosixPath(python).name
    if name.startswith("python3.") and name.removeprefix("python3.").isdigit():
        return "python@" + name.removeprefix("python")
    return None


def homebrew_services(config: Config, brew_prefix: str) -> list[str]:
    """The services Homebrew installs: those whose configured binary is under its prefix."""
    return [
        service
        for service in HOMEBREW_FORMULAE
        if PurePosixPath(getattr(config, service).binary).is_relative_to(brew_prefix)
    ]


def launchd_environment_command(plist: dict, *code: str) -> str:
    """Run `python -c code` the way launchd starts the plist: its environment only."""
    env = " ".join(shlex.quote(f"{k}={v}") for k, v in plist["EnvironmentVariables"].items())
    python = shlex.quote(plist["ProgramArguments"][0])
    workdir = shlex.quote(plist["WorkingDirectory"])
    return f"cd {workdir} && env -i {env} {python} -c {shlex.quote('; '.join(code))}"


class NodePlanner:
    """Adds one node's operations to the pyinfra state."""

    def __init__(self, state: State, host: Host, config: Config, config_text: str):
        self.state, self.host, self.config = state, host, config
        self.config_text = config_text
        self.node: NodeSettings = host.data.node
        self.plan = HostPlan(host, self.node)
        self.sudo = {"_sudo": True} if self.node.ssh_user != "root" else {}
        self.brew_bin = ""  # Homebrew's bin folder on the node
        self.brew_env: dict[str, str] = {}  # PATH with Homebrew's bin folder
        self.tls_files: dict[str, bytes] = {}  # remote path -> content, with security.tls
        self.tls_changed = False  # some TLS file of this node is new or different

    # --- helpers ------------------------------------------------------------------------

    def op(self, function, name: str, **kwargs):
        meta = add_op(self.state, function, host=self.host, name=name, **kwargs)[self.host]
        self.plan.ops.append((name, meta))
        return meta

    def fact(self, fact, **kwargs):
        return self.host.get_fact(fact, **kwargs)

    def put(self, name: str, data: bytes | str, dest: str, mode: str, root: bool = False):
        src = StringIO(data) if isinstance(data, str) else BytesIO(data)
        owner = {"user": "root", "group": ROOT_GROUP, **self.sudo} if root else {}
        return self.op(files.put, name, src=src, dest=dest, mode=mode, **owner)

    def service(self, name: str, label: str, change: services.Change) -> None:
        job = self.fact(LaunchdService, label=label)
        action, commands = services.service_commands(label, job, change)
        if commands:
            self.op(server.shell, f"{name}: {action}", commands=commands, **self.sudo)
            self.plan.services[label] = action

    # --- every node ---------------------------------------------------------------------

    def check_homebrew(self) -> None:
        """Homebrew, and the node's base Python (from Homebrew when it is missing)."""
        brew_path = next((p for p in HOMEBREW_PATHS if self.fact(Executable, path=p)), None)
        if brew_path is None:
            raise PlanError(
                f"Homebrew is not installed (looked for {' and '.join(HOMEBREW_PATHS)}): "
                "install it from https://brew.sh"
            )
        self.brew_bin = str(PurePosixPath(brew_path).parent)
        self.brew_env = {"PATH": f"{self.brew_bin}:/usr/bin:/bin"}
        if self.fact(Executable, path=self.node.python):
            return
        formula = homebrew_formula(self.node.python)
        if not formula:
            raise PlanError(f"python {self.node.python} does not exist on {self.node.name}")
        self.op(brew.packages, f"python: brew install {formula}", packages=[formula],
                _env=self.brew_env)  # fmt: skip

    def layout(self) -> None:
        node = self.node
        folders = (node.install_dir, layout.log_dir(node), layout.run_dir(node),
                   layout.wheels_dir(node))  # fmt: skip
        for path in folders:
            self.op(files.directory, f"folder {path}", path=path, user=node.ssh_user, **self.sudo)

    def tls(self, wanted: Mapping[str, tuple[bytes, int | str]]) -> None:
        """The node's certificates, keys and web-configs into its tls folder.

        The folder is made 0700 (and tightened if it exists) before any file is uploaded:
        an upload lands with the login's umask and gets its final mode only afterwards, and
        inside a folder no one else may enter no key or password is ever readable by them.
        The uploads run as the ssh user, never through sudo's copy via /tmp."""
        folder = layout.tls_dir(self.node)
        self.op(files.directory, f"folder {folder} (0700)", path=folder, user=self.node.ssh_user,
                mode="700", **self.sudo)  # fmt: skip
        for remote, (data, mode) in sorted(wanted.items()):
            if PurePosixPath(remote).parent != PurePosixPath(folder):
                raise PlanError(f"TLS file {remote} is not in {folder}")
            put = self.put(f"tls {PurePosixPath(remote).name}", data, remote, octal_mode(mode))
            self.tls_changed |= put.will_change
            self.tls_files[remote] = data

    def python_env(self, wheel: Wheel, exporter_plist: dict) -> bool:
        """The venv and the wheel in it; True when the installed package changes."""
        node, venv, python = self.node, layout.venv_dir(self.node), layout.venv_python(self.node)
        made_from = (self.fact(TextFile, path=layout.venv_origin_path(node)) or "").strip()
        venv_ok = made_from == node.python and self.fact(Executable, path=python)
        if not venv_ok:
            self.op(
                server.shell,
                f"venv: create from {node.python}",
                commands=[
                    f"rm -rf {shlex.quote(venv)}",
                    f"{shlex.quote(node.python)} -m venv {shlex.quote(venv)}",
                    f"printf '%s\\n' {shlex.quote(node.python)} > "
                    + shlex.quote(layout.venv_origin_path(node)),
                ],
            )
        remote_wheel = layout.wheel_path(node, wheel.name)
        self.op(files.put, f"wheel {wheel.name}", src=str(wheel.path), dest=remote_wheel,
                mode="644")  # fmt: skip
        installed = (self.fact(TextFile, path=layout.venv_wheel_path(node)) or "").strip()
        if venv_ok and installed == wheel.sha256:
            return False
        check = launchd_environment_command(
            exporter_plist, "import minicluster.exporter, minicluster.trainer, torch"
        )
        self.op(
            server.shell,
            f"venv: install {wheel.name} (sha256 {wheel.sha256[:12]})",
            commands=[
                *install_commands(python, remote_wheel),
                check,  # imports as launchd will run it, or the deploy stops here
                f"printf '%s\\n' {wheel.sha256} > " + shlex.quote(layout.venv_wheel_path(node)),
            ],
        )
        return True

    def exporter(self, plists: dict[str, bytes], reinstalled: bool) -> None:
        node, label = self.node, exporter_label()
        view = node_view(self.config, node)
        if node.role == "master":  # what the last deploy installed, before it is replaced
            installed = self.fact(TextFile, path=layout.config_path(node)) or ""
            self.plan.notes.extend(departed_notes(installed, self.config))
        text = self.config_text if view is self.config else view.to_yaml()
        self.put("config.yaml", text, layout.config_path(node), "644")
        inputs_path = layout.exporter_inputs_path(node)
        digest = exporter_inputs(view, self.tls_files)
        inputs = self.put("exporter inputs", digest, inputs_path, "644")
        plist = self.put(
            f"plist {label}", plists[f"{label}.plist"], services.plist_path(label), "644", True
        )
        change = services.Change(plist=plist.will_change, restart=reinstalled or inputs.will_change)
        self.service("exporter", label, change)
        # macOS's newsyslog reads /etc/newsyslog.d; a host without that folder has no newsyslog.
        if self.fact(Directory, path=str(PurePosixPath(newsyslog.CONF_PATH).parent)):
            text = newsyslog.newsyslog_conf(self.config, node)
            self.put("log rotation (newsyslog)", text, newsyslog.CONF_PATH, "644", True)

    # --- the master ---------------------------------------------------------------------

    def monitoring_binaries(self) -> None:
        """Homebrew installs the services whose configured binary is at Homebrew's paths;
        a binary configured anywhere else is the user's to install, and is checked."""
        config, prefix = self.config, str(PurePosixPath(self.brew_bin).parent)
        from_brew = homebrew_services(config, prefix)
        if from_brew:
            formulae = [HOMEBREW_FORMULAE[service] for service in from_brew]
            self.op(brew.packages, f"brew install {' '.join(formulae)}", packages=formulae,
                    _env=self.brew_env)  # fmt: skip
        tools = {"prometheus": "promtool", "alertmanager": "amtool"}
        for service, tool in tools.items():
            if service in from_brew:
                continue
            binary = getattr(config, service).binary
            for path in (binary, str(PurePosixPath(binary).with_name(tool))):
                if not self.fact(Executable, path=path):
                    raise PlanError(
                        f"{path} is missing on {self.node.name}: install {service} there, or "
                        f"set {service}.binary to Homebrew's ({prefix}/bin/{service})"
                    )
        self.plan.grafana_present = "grafana" in from_brew or self.fact(
            Executable, path=config.grafana.binary
        )
        if not self.plan.grafana_present:
            self.plan.notes.append(
                f"grafana: {config.grafana.binary} is not installed here; its files are "
                "rendered and checked, it is not started"
            )

    def monitoring_stack(self, rendered: stack.Stack, plists: dict[str, bytes]) -> None:
        config, node = self.config, self.node
        services_run = ["prometheus", "alertmanager"] + (
            ["grafana"] if self.plan.grafana_present else []
        )
        for service in services_run:
            path = layout.data_dir(node, service)
            self.op(files.directory, f"folder {path}", path=path, user=node.ssh_user, **self.sudo)
        secrets_dir = layout.secrets_dir(node)
        self.op(files.directory, f"folder {secrets_dir}", path=secrets_dir, user=node.ssh_user,
                mode="700", **self.sudo)  # fmt: skip
        secrets_changed = False
        for remote, data in rendered.secrets.items():
            put = self.put(f"grafana secret {PurePosixPath(remote).name}", data, remote, "600")
            secrets_changed |= put.will_change

        live = self.fact(TreeDigest, path=layout.stack_dir(node))
        changed = rendered.changed_files(live)
        self.plan.stack_changes = changed
        if changed:
            staging = layout.staging_dir(node)
            # Staged in a folder only the ssh user enters: a private file (alertmanager.yml)
            # is readable by others neither before its chmod nor after (swap opens it).
            self.op(server.shell, "stack: clear staging",
                    commands=[f"rm -rf {shlex.quote(staging)} && mkdir -m 700 "
                              + shlex.quote(staging)])  # fmt: skip
            for path, data in rendered.files.items():
                mode = "600" if path in PRIVATE else "644"
                self.put(f"stack: stage {path}", data, f"{staging}/{path}", mode)
            checks = stack.validate_commands(config, rendered, staging)
            self.op(
                server.shell,
                f"stack: check ({', '.join(changed)}) with promtool/amtool, then install",
                commands=[*checks, stack.swap_command(config)],
            )
        touched = stack.services_touched(changed)

        for service in services_run:
            label = LABEL_PREFIX + service
            plist = self.put(
                f"plist {label}", plists[f"{label}.plist"], services.plist_path(label), "644", True
            )
            # Their TLS files are read again by a reload; Grafana reads its only at start.
            if service == "grafana":
                restart = "grafana" in touched or secrets_changed or self.tls_changed
                change = services.Change(plist=plist.will_change, restart=restart)
            else:
                reload = service in touched or self.tls_changed
                change = services.Change(plist=plist.will_change, reload=reload)
            self.service(service, label, change)


def plan_host(
    state: State, host: Host, config: Config, config_text: str, wheel: Wheel, rendered: stack.Stack
) -> HostPlan:
    """Add `host`'s operations to `state`; raise PlanError if the node cannot be deployed."""
    planner = NodePlanner(state, host, config, config_text)
    node = planner.node
    plists = rendered.plists[node.name]
    exporter_plist = plistlib.loads(plists[f"{exporter_label()}.plist"])
    planner.check_homebrew()
    planner.layout()
    if rendered.tls:  # before the stack: promtool checks the files prometheus.yml names
        planner.tls(rendered.tls[node.name])
    reinstalled = planner.python_env(wheel, exporter_plist)
    planner.exporter(plists, reinstalled)
    if node.role == "master":
        planner.monitoring_binaries()
        planner.monitoring_stack(rendered, plists)
    return planner.plan
