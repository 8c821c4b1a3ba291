"""Regenerate the copies committed in the repository from config.example.yaml.

    python -m minicluster.render.committed

rewrites prometheus/rules/*.yml, grafana/dashboards/*.json, grafana/provisioning/ and
launchd/<node>/*.plist from the committed example, never from a user's config.yaml (which
holds a site's addresses and is not tracked). The drift tests (tests/stack/test_drift.py)
fail until this has been run after a change to the renderers or to the example.
"""

from __future__ import annotations

from pathlib import Path

from minicluster.core.config import load_config

OWNED = (
    "launchd",
    "prometheus/rules",
    "grafana/dashboards",
    "grafana/provisioning/datasources",
    "grafana/provisioning/dashboards",
)

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO_ROOT / "config.example.yaml"


def main() -> int:
    # Imported here: `minicluster config init` reads EXAMPLE_CONFIG and must stay as cheap
    # to start as every other command (the renderers pull in the Grafana SDK).
    from minicluster.render.bundle import repository_files, write_files

    config = load_config(EXAMPLE_CONFIG)
    for path in write_files(repository_files(config), REPO_ROOT, OWNED):
        print(path.relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
