"""The user's config.yaml is theirs: `config init` creates it, and no test or committed
rendering reads it."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from minicluster.core.config import load_config
from minicluster.render.committed import OWNED
from tests.support import EXAMPLE_CONFIG, REPO, git

CLI = str(Path(sys.executable).with_name("minicluster"))


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_init_copies_the_example_and_the_copy_checks_clean(tmp_path):
    result = run_cli("config", "init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    created = tmp_path / "config.yaml"
    assert created.read_text() == EXAMPLE_CONFIG.read_text()
    assert result.stdout.startswith("config.yaml: created from config.example.yaml;")
    assert load_config(created) == load_config(EXAMPLE_CONFIG)


def test_init_refuses_to_overwrite_without_force(tmp_path):
    mine = tmp_path / "cluster" / "config.yaml"
    assert run_cli("config", "init", str(mine), cwd=tmp_path).returncode == 0
    mine.write_text(mine.read_text().replace("192.0.2.10", "10.1.2.3"))
    edited = mine.read_text()

    again = run_cli("config", "init", str(mine), cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.splitlines() == [
        f"minicluster: {mine}: already exists; edit it, or add --force to replace it"
    ]
    assert mine.read_text() == edited  # untouched

    forced = run_cli("config", "init", "--force", str(mine), cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert mine.read_text() == EXAMPLE_CONFIG.read_text()


def test_init_refuses_a_directory(tmp_path):
    result = run_cli("config", "init", "--force", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    expected = f"minicluster: {tmp_path}: is a directory; name the file to create"
    assert result.stderr.strip() == expected


def test_the_users_config_is_not_tracked():
    ignored = subprocess.run(git("check-ignore", "-q", "config.yaml"), timeout=30)
    assert ignored.returncode == 0, "config.yaml must be in .gitignore"
    tracked = subprocess.run(
        git("ls-files", "--error-unmatch", "config.yaml"), capture_output=True, timeout=30
    )
    assert tracked.returncode != 0, "config.yaml is tracked; only config.example.yaml is"


def _digests(root: Path) -> dict[str, str]:
    files = [p for folder in (*OWNED, "prometheus/tests") for p in (root / folder).rglob("*")]
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
        if p.is_file()
    }


def _checkout_copy(root: Path) -> Path:
    """The working tree's files (tracked, and new ones not ignored) under `root`."""
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
    names = subprocess.run(listed, capture_output=True, check=True, timeout=30)
    copy = root / "checkout"
    for name in filter(None, names.stdout.decode().split("\0")):
        source = REPO / name
        if source.is_file() and not name.startswith("docs/img/"):
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    return copy


def _render_committed(copy: Path, namespace: Path) -> None:
    """`python -m minicluster.render.committed` with the copy's own modules: its component
    folders stand where the one import namespace maps them."""
    bootstrap = (
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(copy)!r})\n"
        "import minicluster\n"
        f"minicluster.__path__.append({str(namespace)!r})\n"
        "import minicluster.render.committed as c\n"
        f"assert c.__file__.startswith({str(copy)!r}), c.__file__\n"
        "runpy.run_module('minicluster.render.committed', run_name='__main__')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", bootstrap],
        cwd=copy, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_editing_the_users_config_changes_no_committed_rendering(tmp_path):
    """Regenerating the committed files in a copy of the checkout gives the same bytes
    with and without a user's config.yaml (another address, threshold and port) at its
    root."""
    copy = _checkout_copy(tmp_path)
    namespace = tmp_path / "namespace"
    namespace.mkdir()
    for folder, name in (("exporters", "exporter"), ("trainer", "trainer"), ("deploy", "deploy")):
        (namespace / name).symlink_to(copy / folder)
    _render_committed(copy, namespace)
    without = _digests(copy)
    assert without, "nothing rendered to compare"

    user = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    user["nodes"][0]["address"] = "10.9.8.7"
    user["alerts"]["cpu_saturated_ratio"] = 0.5
    user["prometheus"]["port"] = 9191
    (copy / "config.yaml").write_text(yaml.safe_dump(user, sort_keys=False))
    _render_committed(copy, namespace)
    assert _digests(copy) == without
    assert not [name for name in without if b"10.9.8.7" in (copy / name).read_bytes()]


def test_no_test_or_renderer_reads_the_repository_config_yaml():
    """Tests and the committed renderings read config.example.yaml; a test's own
    config.yaml lives in tmp_path."""
    pattern = re.compile(
        r"""(REPO\w*|parents\[\d\])\s*/\s*["']config\.yaml["']|load_config\(\s*["']config\.yaml"""
    )
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for folder in ("tests", "minicluster/render")
        for path in sorted((REPO / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
