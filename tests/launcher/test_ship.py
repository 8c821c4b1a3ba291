"""Shipping a project: which files travel, what a second run sends, the job environment.

Loopback nodes (two folders on this machine) take the same manifest, delta and tar stream
as a node over ssh; tests/launcher/test_user_jobs_two_hosts.py covers the ssh path.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minicluster.core.layout import jobenv_dir, workdir_dir
from minicluster.launcher import receive
from minicluster.launcher.files import ShipError, delta, project_files
from minicluster.launcher.remote import SshSettings
from minicluster.launcher.ship import placement, project_key, ship
from tests.launcher.conftest import loopback_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sharding"


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


PROJECT = {
    "train.py": "print('train')\n",
    "pkg/__init__.py": "",
    "pkg/model.py": "X = 1\n",
    "data/big.bin": "x" * 1000,
    "notes.log": "log\n",
    "pkg/__pycache__/model.cpython-311.pyc": "bytecode",
    ".pytest_cache/v/cache": "{}",
    "myenv/pyvenv.cfg": "home = /usr/bin\n",
    "myenv/lib/site.py": "venv content\n",
    "sub/.gitignore": "secret.txt\n",
    "sub/secret.txt": "hidden\n",
    "sub/kept.txt": "kept\n",
    ".gitignore": "data/\n*.log\n",
}
SHIPPED = {
    ".gitignore",
    "pkg/__init__.py",
    "pkg/model.py",
    "sub/.gitignore",
    "sub/kept.txt",
    "train.py",
}


@pytest.mark.parametrize("in_git", [True, False], ids=["git-work-tree", "plain-folder"])
def test_gitignore_venvs_caches_and_git_stay_home(tmp_path, in_git):
    root = tmp_path / "project"
    _write(root, PROJECT)
    if in_git:
        _git(root, "init", "-q")
        _git(root, "add", "train.py", "pkg/model.py")  # tracked and untracked files both ship
    files = project_files(root)
    assert set(files.manifest) == SHIPPED
    assert files.total_bytes == sum((root / p).stat().st_size for p in SHIPPED)


def test_a_tracked_file_deleted_in_the_work_tree_does_not_ship(tmp_path):
    _write(tmp_path, {"a.py": "a\n", "b.py": "b\n"})
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "a.py", "b.py")
    (tmp_path / "b.py").unlink()
    assert set(project_files(tmp_path).manifest) == {"a.py"}


def test_a_project_over_the_size_limit_is_refused_naming_the_largest_file(tmp_path):
    _write(tmp_path, {"a.py": "a" * 10, "weights.pt": "w" * 5000})
    with pytest.raises(ShipError, match=r"more than .* MB to ship .*weights\.pt"):
        project_files(tmp_path, max_bytes=1000)


def test_delta_sends_new_and_changed_files_and_deletes_the_rest():
    local = {"a": "1", "b": "2", "c": "3"}
    remote = {"a": "1", "b": "old", "gone": "9"}
    assert delta(local, remote) == (["b", "c"], ["gone"])
    assert delta(local, local) == ([], [])


def _shipped(tmp_path: Path, root: Path):
    config = loopback_config(tmp_path / "state")
    key = project_key(root)
    places = {n.name: placement(n, key, sys.executable) for n in config.nodes}
    return config, places, lambda: ship(config, project_files(root), places, SshSettings())


def test_a_second_run_sends_nothing_and_an_edit_sends_only_that_file(tmp_path):
    root = tmp_path / "project"
    shutil.copytree(EXAMPLE, root)
    config, places, run = _shipped(tmp_path, root)
    first = run()
    assert [(s.node, s.sent_files, s.unchanged) for s in first] == [
        ("mini-red", 6, 0),
        ("mini-yellow", 6, 0),
    ]
    for node in config.nodes:
        tree = Path(workdir_dir(node, project_key(root)))
        assert receive.manifest(tree) == project_files(root).manifest
        assert tree.is_relative_to(node.install_dir)

    second = run()
    for before, after in zip(first, second, strict=True):
        assert after.sent_files == 0 and after.unchanged == 6
        assert after.sent_bytes < 0.01 * before.sent_bytes, (before, after)
    print(f"first run {first[0].sent_bytes} B per node, second {second[0].sent_bytes} B")

    (root / "src" / "common" / "sharding.py").write_text("VALUE = 2\n")
    (root / "run_distributed.py").unlink()
    (root / "extra.py").write_text("E = 1\n")
    third = run()
    assert [(s.sent_files, s.unchanged, s.deleted) for s in third] == [(2, 4, 1), (2, 4, 1)]
    tree = Path(places["mini-yellow"].tree)
    assert (tree / "src/common/sharding.py").read_text() == "VALUE = 2\n"
    assert not (tree / "run_distributed.py").exists() and (tree / "extra.py").exists()
    assert "sent 2 files" in third[1].describe() and "1 deleted" in third[1].describe()


def test_a_node_copy_changed_behind_our_back_is_repaired_and_outputs_are_kept(tmp_path):
    root = tmp_path / "project"
    shutil.copytree(EXAMPLE, root)
    _config, places, run = _shipped(tmp_path, root)
    run()
    tree = Path(places["mini-red"].tree)
    (tree / "run_distributed.py").write_text("tampered\n")
    # What the program wrote there (outputs, bytecode) is its own: kept, and not compared.
    _write(tree, {"out/ckpt.pt": "weights", "src/common/__pycache__/x.pyc": "bytecode"})
    red, yellow = run()
    assert (red.sent_files, red.deleted, red.sent_bytes > 0) == (1, 0, True)
    assert (yellow.sent_files, yellow.sent_bytes) == (0, 0)
    assert receive.manifest(tree) == project_files(root).manifest
    assert (tree / "out/ckpt.pt").read_text() == "weights"
    assert (tree / "src/common/__pycache__/x.pyc").exists()


def test_a_copy_that_does_not_match_stops_the_run_naming_the_node(tmp_path, monkeypatch):
    root = tmp_path / "project"
    shutil.copytree(EXAMPLE, root)
    _config, _places, run = _shipped(tmp_path, root)
    real_apply = receive.apply

    def lossy(tree, delete, archive):
        digest = real_apply(tree, delete, archive)
        return "0" * 64 if "mini-yellow" in str(tree) else digest

    monkeypatch.setattr(receive, "apply", lossy)
    with pytest.raises(ShipError, match=r"^mini-yellow: its copy .* does not match"):
        run()


def test_a_node_that_cannot_receive_the_files_is_named_with_the_cause(tmp_path):
    root = tmp_path / "project"
    shutil.copytree(EXAMPLE, root)
    config, _places, run = _shipped(tmp_path, root)
    yellow = config.node("mini-yellow")
    blocker = Path(yellow.install_dir)
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the node's folder should be\n")
    with pytest.raises(ShipError) as caught:
        run()
    message = str(caught.value)
    assert message.startswith("mini-yellow: receiving the files: cannot write")
    assert "Not a directory" in message and "\n" not in message


def test_the_job_environment_layers_on_the_node_venv_and_names_the_project(tmp_path):
    root = tmp_path / "project"
    shutil.copytree(EXAMPLE, root)
    config, _places, run = _shipped(tmp_path, root)
    run()
    node = config.node("mini-red")
    env = Path(jobenv_dir(node, project_key(root)))
    site = receive.env_site_packages(env)
    tree = workdir_dir(node, project_key(root))
    assert (site / "_minicluster_project.pth").read_text() == f"{tree}\n{tree}/src\n"
    layered = (site / "_minicluster_node_venv.pth").read_text()
    assert "import site; site.addsitedir(" in layered
    assert repr(receive.sysconfig.get_paths()["purelib"]) in layered
    # Not a copy of the node venv: the job environment holds only our .pth files.
    assert sorted(p.name for p in site.iterdir()) == [
        "_minicluster_node_venv.pth",
        "_minicluster_project.pth",
    ]


def test_without_src_only_the_project_root_is_on_the_path(tmp_path):
    assert receive.pth_files(tmp_path, [])["_minicluster_project.pth"] == f"{tmp_path}\n"


@pytest.mark.parametrize(
    "target",
    [["-m", "src.tests.test_sharding"], ["src/tests/test_sharding.py"]],
    ids=["module", "script"],
)
def test_the_project_imports_from_an_empty_environment(tmp_path, target):
    root = tmp_path / "project"
    shutil.copytree(EXAMPLE, root)
    _config, places, run = _shipped(tmp_path, root)
    run()
    place = places["mini-yellow"]
    # As a non-login ssh shell starts it: no PYTHONPATH, no profile, nothing inherited.
    done = subprocess.run(
        ["env", "-i", place.python, *target],
        cwd=place.tree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "rank 0: 2 sharding tests passed"
    probe = "import torch, common, minicluster.track; print(common.__file__)"
    done = subprocess.run(
        ["env", "-i", place.python, "-c", probe],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{place.tree}/src/common/__init__.py"


def test_dependencies_install_once_per_requirements_and_a_failure_names_the_package(
    tmp_path, monkeypatch
):
    root = tmp_path / "project"
    shutil.copytree(EXAMPLE, root)
    (root / "requirements.txt").write_text("psutil\n")  # already in the node venv: no download
    config = loopback_config(tmp_path / "state")
    key = project_key(root)
    places = {n.name: placement(n, key, sys.executable) for n in config.nodes[:1]}
    one = config.model_copy(update={"nodes": config.nodes[:1]})

    def run():
        return ship(one, project_files(root), places, SshSettings(), install_deps=True)

    assert run()[0].deps == "installed dependencies from requirements.txt"
    assert run()[0].deps == "dependencies from requirements.txt already installed"
    (root / "requirements.txt").write_text("minicluster-no-such-package==1.0\n")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # fail without asking an index
    with pytest.raises(ShipError) as caught:
        run()
    assert str(caught.value) == (
        "mini-red: installing dependencies: installing requirements.txt failed: "
        "No matching distribution found for minicluster-no-such-package==1.0"
    )


def test_dependencies_come_from_requirements_txt_else_pyproject(tmp_path):
    assert receive.requirements(tmp_path) == ([], None)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "p"\ndependencies = ["numpy>=1.26", "rich"]\n'
    )
    assert receive.requirements(tmp_path) == (
        ["numpy>=1.26", "rich"],
        "pyproject.toml [project].dependencies",
    )
    (tmp_path / "requirements.txt").write_text("psutil\n")
    assert receive.requirements(tmp_path) == (
        ["-r", str(tmp_path / "requirements.txt")],
        "requirements.txt",
    )
    (tmp_path / "pyproject.toml").write_text("[project\n")
    (tmp_path / "requirements.txt").unlink()
    with pytest.raises(receive.ReceiveError, match=r"^pyproject.toml: "):
        receive.requirements(tmp_path)
