"""Shared by the tests in tests/stack: configs with every secret and port in tmp_path."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from minicluster.core.config import Config, load_config, parse_config
from minicluster.core.profiles import local_profile

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "prometheus" / "rules"
PROMTOOL_TESTS_DIR = REPO / "prometheus" / "tests"
RUNBOOKS = REPO / "docs" / "runbooks.md"
PROMQL_COOKBOOK = REPO / "docs" / "promql.md"


def with_secrets_in(config: Config, folder: Path) -> Config:
    """A copy of `config` whose Grafana secret files live in `folder` (never in ~)."""
    data = config.model_dump(mode="json")
    data["grafana"]["admin_password_file"] = str(folder / "secrets" / "grafana-admin-password")
    data["grafana"]["secret_key_file"] = str(folder / "secrets" / "grafana-secret-key")
    return parse_config(data, "<test>")


def repo_config(tmp_path: Path) -> Config:
    """The repository's config.example.yaml, secrets redirected into tmp_path."""
    return with_secrets_in(load_config(REPO / "config.example.yaml"), tmp_path)


def local_config(tmp_path: Path, **sections: dict) -> Config:
    return with_secrets_in(local_profile(state_dir=tmp_path / "state", **sections), tmp_path)


def rule_documents() -> dict[str, dict]:
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(RULES_DIR.glob("*.yml"))}


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the `## ` and `### ` headings of a Markdown text."""
    found = set()
    for line in markdown.splitlines():
        match = re.match(r"^#{2,3} (.+)$", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match[1].strip().lower()).replace(" ", "-")
            found.add(slug)
    return found
