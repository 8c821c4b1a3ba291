"""Regenerate the copies committed in the repository from the root config.yaml.

    python -m minicluster.render.committed

rewrites prometheus/rules/*.yml, grafana/dashboards/*.json, grafana/provisioning/ and
launchd/<node>/*.plist. The
drift tests (tests/stack/test_render_drift.py) fail until this has been run after a change
to the renderers or to config.yaml.
"""

from __future__ import annotations

from pathlib import Path

from minicluster.core.config import load_config
from minicluster.render.bundle import repository_files, write_files

OWNED = (
    "launchd",
    "prometheus/rules",
    "grafana/dashboards",
    "grafana/provisioning/datasources",
    "grafana/provisioning/dashboards",
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    config = load_config(REPO_ROOT / "config.yaml")
    for path in write_files(repository_files(config), REPO_ROOT, OWNED):
        print(path.relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
