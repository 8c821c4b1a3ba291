"""Every path on a node comes from minicluster.core.layout, and says what the docs say."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

from minicluster.core import layout
from minicluster.core.config import NodeSettings, TrainerSettings

ROOT = Path(__file__).resolve().parents[2]
# The installed package's folders (pyproject's package-dir).
PACKAGE_DIRS = ("minicluster", "exporters", "trainer", "deploy")
LAYOUT = ROOT / "minicluster" / "core" / "layout.py"
# Folder and file names directly below install_dir: appending one of them to anything is
# building a node path by hand.
NODE_NAMES = ("venv", "logs", "run", "stack", "staging", "secrets", "data", "wheels", "jobs",
              "config.yaml", "exporter.inputs", "tls")  # fmt: skip


def _mentions_install_dir(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == "install_dir" for n in ast.walk(node))


def _is_join_call(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("join", "joinpath")


def hand_built_paths(source: str) -> list[tuple[int, str]]:
    """(line, why) for each expression that builds a node path without layout."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr):
            if _mentions_install_dir(node):
                found.append((node.lineno, "f-string on install_dir"))
            for before, after in itertools.pairwise(node.values):
                if isinstance(before, ast.FormattedValue) and isinstance(after, ast.Constant):
                    first = str(after.value).lstrip("/").split("/")[0]
                    if str(after.value).startswith("/") and first in NODE_NAMES:
                        found.append((node.lineno, f"f-string appends /{first}"))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Div, ast.Add)):
            if _mentions_install_dir(node.left) or _mentions_install_dir(node.right):
                found.append((node.lineno, "/ or + on install_dir"))
        elif (
            isinstance(node, ast.Call)
            and _is_join_call(node)
            and any(map(_mentions_install_dir, node.args))
        ):
            found.append((node.lineno, "join on install_dir"))
    return found


def test_only_layout_builds_paths_on_a_node():
    offenders = []
    for folder in PACKAGE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == LAYOUT:
                continue
            for line, why in hand_built_paths(path.read_text()):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {why}")
    assert offenders == [], "use minicluster.core.layout instead:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    "source",
    [
        'f"{node.install_dir}/venv"',
        "Path(node.install_dir) / 'logs'",
        "os.path.join(config.master.install_dir, 'stack')",
        "node.install_dir + '/run'",
        'f"{base}/secrets/key"',
    ],
)
def test_the_check_sees_each_way_of_building_a_path(source):
    assert hand_built_paths(source)


def test_the_check_leaves_other_paths_alone():
    assert hand_built_paths('f"{layout.stack_dir(node)}/grafana/dashboards"') == []
    assert hand_built_paths("Path(config.master.install_dir)") == []
    assert hand_built_paths('f"{job_dir}/rank{rank}.log"') == []


def _node(install_dir: str = "/opt/minicluster", role: str = "master") -> NodeSettings:
    return NodeSettings(name="mini-red", address="10.0.0.2", role=role, ssh_user="admin",
                        install_dir=install_dir)  # fmt: skip


def test_the_layout_of_a_node():
    node = _node()
    assert layout.config_path(node) == "/opt/minicluster/config.yaml"
    assert layout.venv_python(node) == "/opt/minicluster/venv/bin/python"
    assert layout.run_dir(node) == "/opt/minicluster/run"
    assert layout.log_dir(node) == "/opt/minicluster/logs"
    assert layout.stack_dir(node) == "/opt/minicluster/stack"
    assert layout.data_dir(node, "prometheus") == "/opt/minicluster/data/prometheus"
    assert layout.secret_path(node, "k") == "/opt/minicluster/secrets/k"
    assert layout.wheel_path(node, "m.whl") == "/opt/minicluster/wheels/m.whl"
    assert layout.tls_dir(node) == "/opt/minicluster/tls"
    assert layout.tls_path(node, "node.key") == "/opt/minicluster/tls/node.key"
    # A trailing slash in the config makes no double slash.
    assert layout.venv_python(_node("/opt/minicluster/")) == "/opt/minicluster/venv/bin/python"
    # The node's own properties are the layout's.
    assert node.venv_python == layout.venv_python(node) and node.run_dir == layout.run_dir(node)


def test_trainer_folders_are_below_install_dir_unless_absolute():
    node = _node()
    trainer = TrainerSettings(checkpoint_dir="ckpt", log_dir="/var/log/mc/")
    assert layout.checkpoint_dir(node, trainer) == "/opt/minicluster/ckpt"
    assert layout.rank_log_dir(node, trainer) == "/var/log/mc"
    assert layout.job_log_dir(node, trainer, "job-1") == "/var/log/mc/job-1"
    assert trainer.resolve_dir("ckpt", node) == layout.checkpoint_dir(node, trainer)
    # By default rank logs sit beside launchd's logs.
    assert layout.rank_log_dir(node, TrainerSettings()) == layout.log_dir(node)


def test_undeploy_keeps_data_and_logs_and_removes_the_masters_stack():
    worker, master = _node(role="worker"), _node()
    for node in (worker, master):
        kept = {layout.log_dir(node), layout.data_dir(node, "prometheus")}
        assert not kept & set(layout.deployed_paths(node))
        assert layout.venv_dir(node) in layout.deployed_paths(node)
        # Keys and certificates leave with the node's install; the CA stays on the control
        # machine for a later deploy.
        assert layout.tls_dir(node) in layout.deployed_paths(node)
    assert layout.stack_dir(master) in layout.deployed_paths(master)
    assert layout.stack_dir(worker) not in layout.deployed_paths(worker)
