"""The master's monitoring stack as deploy installs it: the tree `minicluster render` writes.

The tree (minus `launchd/`, whose plists go to /Library/LaunchDaemons) is installed as
`<install_dir>/stack`. A new tree is first uploaded to `<install_dir>/staging`, checked
there with the master's own promtool and amtool, and only then swapped in, so a config or
rule file they reject never replaces the running one.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import yaml

from minicluster.core import layout
from minicluster.core.config import Config
from minicluster.render.bundle import bundle_files
from minicluster.render.grafana import ensure_secrets, secret_files
from minicluster.security.files import node_tls_files
from minicluster.security.pki import Pki

LAUNCHD_PREFIX = "launchd/"
# Which service reads which part of the tree.
SERVICE_DIRS = {"prometheus": "prometheus/", "alertmanager": "alertmanager/", "grafana": "grafana/"}


class StackError(ValueError):
    """A rendered file that is wrong before it ever reaches the master."""


@dataclass(frozen=True)
class Stack:
    files: dict[str, bytes]  # relative path in the stack -> content
    plists: dict[str, dict[str, bytes]]  # node name -> plist file name -> content
    secrets: dict[str, bytes]  # remote path on the master -> content
    # With security.tls: node name -> remote path in its tls folder -> (content, mode).
    tls: dict[str, dict[str, tuple[bytes, int]]] = field(default_factory=dict)

    def digests(self) -> dict[str, str]:
        return {path: hashlib.sha256(data).hexdigest() for path, data in self.files.items()}

    def changed_files(self, live: dict[str, str]) -> list[str]:
        """Files that differ from the live tree's digests, including ones to delete."""
        wanted = self.digests()
        return sorted(p for p in wanted.keys() | live.keys() if wanted.get(p) != live.get(p))

    def rule_files(self) -> list[str]:
        return [p for p in self.files if p.startswith("prometheus/rules/")]

    def rule_groups(self) -> set[str]:
        groups = set()
        for path in self.rule_files():
            for group in yaml.safe_load(self.files[path]).get("groups", []):
                groups.add(group["name"])
        return groups

    def dashboard_uids(self) -> list[str]:
        return sorted(
            json.loads(data)["uid"]
            for path, data in self.files.items()
            if path.startswith("grafana/dashboards/")
        )


def services_touched(changed: list[str]) -> set[str]:
    return {
        name for name, prefix in SERVICE_DIRS.items() if any(p.startswith(prefix) for p in changed)
    }


def _check_dashboards(files: dict[str, bytes]) -> None:
    """Grafana only logs and skips a broken dashboard; refuse it here instead."""
    for path, data in files.items():
        if not path.startswith("grafana/dashboards/"):
            continue
        try:
            dashboard = json.loads(data)
        except ValueError as exc:
            raise StackError(f"{path}: not valid JSON: {exc}") from None
        if not dashboard.get("uid"):
            raise StackError(f"{path}: a provisioned dashboard needs a fixed uid")


def render_stack(config: Config, pki: Pki | None = None) -> Stack:
    """Render everything for `config` on the control machine (secrets made once, 0600);
    with `pki` (security.tls), every node's TLS files too."""
    ensure_secrets(config)
    tree: dict[str, bytes] = {}
    plists: dict[str, dict[str, bytes]] = {node.name: {} for node in config.nodes}
    for path, data in bundle_files(config).items():
        if path.startswith(LAUNCHD_PREFIX):
            node, name = path.removeprefix(LAUNCHD_PREFIX).split("/", 1)
            plists[node][name] = data
        else:
            tree[path] = data
    _check_dashboards(tree)
    secrets = {secret.remote: secret.local.read_bytes() for secret in secret_files(config)}
    tls = {} if pki is None else {n.name: node_tls_files(config, n, pki) for n in config.nodes}
    return Stack(tree, plists, secrets, tls)


def validate_commands(config: Config, stack: Stack, root: str) -> list[str]:
    """promtool/amtool checks of the tree at `root` on the master (the binaries' own dirs)."""
    promtool = str(PurePosixPath(config.prometheus.binary).with_name("promtool"))
    amtool = str(PurePosixPath(config.alertmanager.binary).with_name("amtool"))
    rules = [f"{root}/{path}" for path in stack.rule_files()]
    q = shlex.quote
    commands = [f"{q(promtool)} check config {q(root + '/prometheus/prometheus.yml')}"]
    if rules:
        commands.append(f"{q(promtool)} check rules " + " ".join(q(r) for r in rules))
    commands.append(f"{q(amtool)} check-config {q(root + '/alertmanager/alertmanager.yml')}")
    return commands


def swap_command(config: Config) -> str:
    """Replace the live tree by the checked staging tree (a rename; the old one is removed).

    The staging folder is 0700 while files land in it; the live tree is readable again."""
    live = shlex.quote(layout.stack_dir(config.master))
    old = shlex.quote(layout.previous_stack_dir(config.master))
    staged = shlex.quote(layout.staging_dir(config.master))
    return (
        f"chmod 755 {staged} && rm -rf {old} && if [ -d {live} ]; then mv {live} {old}; fi"
        f" && mv {staged} {live} && rm -rf {old}"
    )
