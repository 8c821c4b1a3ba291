"""The whole rendered tree (`minicluster render --out DIR`), as deploy and the demo use it.

    DIR/prometheus/prometheus.yml
    DIR/prometheus/rules/*.yml
    DIR/alertmanager/alertmanager.yml
    DIR/grafana/grafana.ini
    DIR/grafana/provisioning/{datasources,dashboards}/*.yaml
    DIR/grafana/dashboards/*.json
    DIR/launchd/<node>/<label>.plist

On the master the tree is installed as `<install_dir>/stack/` (minicluster.core.layout);
the launchd plists go to /Library/LaunchDaemons on their node.
"""

from __future__ import annotations

import os
from pathlib import Path

from minicluster.core import layout
from minicluster.core.config import Config
from minicluster.render import alertmanager, grafana, launchd, prometheus_config, rules
from minicluster.render.dashboards import dashboards, dumps

# Files that may carry a credential (a webhook URL with a token) are private.
PRIVATE = {"alertmanager/alertmanager.yml"}
# Folders whose every file the bundle owns: files there that it no longer renders are
# removed, so a renamed rule file cannot linger and be loaded twice.
OWNED_DIRS = (
    "prometheus/rules",
    "grafana/dashboards",
    "grafana/provisioning/datasources",
    "grafana/provisioning/dashboards",
    "launchd",
)
RENDERED_SUFFIXES = {".yml", ".yaml", ".json", ".plist"}


def launchd_files(config: Config) -> dict[str, bytes]:
    files = {}
    for node in config.nodes:
        plist = launchd.exporter_plist(config, node, layout.config_path(node))
        files[f"launchd/{node.name}/{plist['Label']}.plist"] = launchd.dumps(plist)
    for label, plist in launchd.master_plists(config).items():
        files[f"launchd/{config.master.name}/{label}.plist"] = launchd.dumps(plist)
    return files


def repository_files(config: Config) -> dict[str, str]:
    """The part of the tree committed to the repository for the default config.yaml."""
    files = {
        f"prometheus/rules/{name}": text for name, text in rules.render_rule_files(config).items()
    }
    files.update(
        {
            f"grafana/provisioning/{name}": text
            for name, text in grafana.provisioning_files(config).items()
        }
    )
    files.update(
        {f"grafana/dashboards/{name}": dumps(data) for name, data in dashboards(config).items()}
    )
    files.update({path: data.decode() for path, data in launchd_files(config).items()})
    return files


def bundle_files(config: Config) -> dict[str, bytes]:
    """Relative path -> content of every file in the rendered tree."""
    files: dict[str, bytes] = {
        "prometheus/prometheus.yml": prometheus_config.render_prometheus_config(config).encode(),
        "alertmanager/alertmanager.yml": alertmanager.render_alertmanager_config(config).encode(),
        "grafana/grafana.ini": grafana.grafana_ini(config).encode(),
    }
    files.update({path: text.encode() for path, text in repository_files(config).items()})
    return dict(sorted(files.items()))


def write_files(
    files: dict[str, bytes | str], out_dir: Path, owned: tuple[str, ...] = ()
) -> list[Path]:
    """Write `files` below `out_dir` atomically; drop other files in the `owned` folders."""
    out_dir = Path(out_dir)
    written = []
    for relative, content in files.items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.unlink(missing_ok=True)  # left by an interrupted render
        # Created with its final mode: a private file is never readable by others, not
        # even between creation and a chmod.
        mode = 0o600 if relative in PRIVATE else 0o644
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)  # the umask may have narrowed a public file's mode
        os.replace(tmp, path)
        written.append(path)
    keep = {out_dir / relative for relative in files}
    for folder_name in owned:
        folder = out_dir / folder_name
        if not folder.is_dir():
            continue
        for path in folder.rglob("*"):
            if path.is_file() and path not in keep and path.suffix in RENDERED_SUFFIXES:
                path.unlink()
    return written


def write_bundle(config: Config, out_dir: Path) -> list[Path]:
    """Render everything into `out_dir`; generate Grafana's secrets if they do not exist."""
    grafana.ensure_secrets(config)
    return write_files(bundle_files(config), out_dir, OWNED_DIRS)
