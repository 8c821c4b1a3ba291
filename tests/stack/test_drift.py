"""The files committed in prometheus/, grafana/ and launchd/ are what the example renders.

They come from config.example.yaml, never from a user's config.yaml. After changing a
renderer or the example, regenerate them with
    .venv/bin/python -m minicluster.render.committed
"""

from __future__ import annotations

import json

import pytest

from minicluster.core.config import load_config
from minicluster.render.bundle import repository_files
from tests.support import EXAMPLE_CONFIG, REPO

RENDERED = repository_files(load_config(EXAMPLE_CONFIG))
FIX = "regenerate with: .venv/bin/python -m minicluster.render.committed"


@pytest.mark.parametrize("relative", sorted(RENDERED))
def test_committed_file_matches_the_rendering(relative):
    committed = REPO / relative
    assert committed.is_file(), f"{relative} is not committed; {FIX}"
    assert committed.read_text() == RENDERED[relative], f"{relative} drifted; {FIX}"


def test_nothing_stale_is_committed_beside_the_rendered_files():
    for folder, pattern in [
        ("prometheus/rules", "*.yml"),
        ("grafana/dashboards", "*.json"),
        ("grafana/provisioning", "**/*.yaml"),
        ("launchd", "*/*.plist"),
    ]:
        for path in (REPO / folder).glob(pattern):
            relative = str(path.relative_to(REPO))
            assert relative in RENDERED, f"{relative} is not rendered any more; delete it"


def test_committed_dashboards_are_json_with_their_fixed_uids():
    uids = {
        json.loads((REPO / "grafana/dashboards" / name).read_text())["uid"]
        for name in ("cluster-overview.json", "training-job.json", "network.json")
    }
    assert uids == {
        "minicluster-cluster-overview",
        "minicluster-training-job",
        "minicluster-network",
    }
