"""Imports point one way: core <- components <- commands and the CLI.

- minicluster.core (config model, node layout, discovery files, log format, metric
  definitions) imports nothing else of the project.
- A component imports the core and itself, plus the stated interfaces in ALLOWED.
- minicluster.commands and minicluster.cli may import anything; nothing else imports them.

Every import counts, also one inside a function (deferred for start-up time) or under
TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import REPO

FOLDERS = {
    "minicluster": "minicluster",
    "exporters": "minicluster.exporter",
    "trainer": "minicluster.trainer",
    "deploy": "minicluster.deploy",
}
CORE = "minicluster.core"
TOP = ("minicluster.cli", "minicluster.commands", "minicluster.__main__")
COMPONENTS = (
    "exporter",
    "trainer",
    "track",
    "deploy",
    "render",
    "launcher",
    "report",
    "demo",
    "bench",
    "top",
    "security",
)

# (importing component, imported module or package): why the interface exists.
ALLOWED = {
    ("trainer", "minicluster.track"): "the built-in trainer is one user of the tracking API",
    ("track", "minicluster.exporter.collectors.process"): (
        "a rank's process CPU and memory, read by the exporter's psutil collector"
    ),
    ("deploy", "minicluster.render"): "deploy installs the rendered bundle and its launchd labels",
    ("deploy", "minicluster.security"): "deploy creates the cluster PKI and ships each node's part",
    ("demo", "minicluster.render"): "the demo renders the stack it starts on this machine",
    ("demo", "minicluster.launcher"): "the demo runs its job the way run-job does",
    ("demo", "minicluster.report"): "the demo ends with the job's report",
    ("bench", "minicluster.launcher"): "bench runs jobs and reads their summaries",
    ("bench", "minicluster.report"): "bench draws with the report's figures",
    ("bench", "minicluster.demo.ports"): "bench takes free loopback ports as the demo does",
    ("report", "minicluster.launcher.summary"): "the report updates the job's summary record",
    ("security", "minicluster.render.webconfig"): (
        "the web-config files a node's tls folder holds are rendered with the rest"
    ),
}


def module_name(path: Path) -> str:
    relative = path.relative_to(REPO).with_suffix("")
    parts = [FOLDERS[relative.parts[0]], *relative.parts[1:]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


FILES = {
    module_name(path): path
    for folder in FOLDERS
    for path in sorted((REPO / folder).rglob("*.py"))
    if "__pycache__" not in path.parts
}


def imported_modules(name: str, path: Path) -> set[str]:
    """The project modules `name` imports (`from pkg import mod` counts as pkg.mod)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                child = f"{module}.{alias.name}"
                found.add(child if child in FILES else module)
    return {m for m in found if m == "minicluster" or m.startswith("minicluster.")}


def component(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in COMPONENTS else None


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def wrong_way(name: str, target: str) -> str | None:
    """Why `name` may not import `target`, or None when it may."""
    if within(name, CORE) or name == "minicluster":
        ok = within(target, CORE) or target == "minicluster"
        return None if ok else "the core imports nothing above it"
    if any(within(target, top) for top in TOP):
        ok = any(within(name, top) for top in TOP)
        return None if ok else "only the CLI imports the commands"
    if any(within(name, top) for top in TOP):
        return None
    mine = component(name)
    assert mine, f"{name} is in no layer: add it to COMPONENTS or the core"
    if within(target, CORE) or target == "minicluster" or component(target) == mine:
        return None
    if any(who == mine and within(target, what) for who, what in ALLOWED):
        return None
    return f"{mine} imports another component outside the stated interfaces (ALLOWED)"


def test_every_module_is_in_a_layer():
    placed = [
        n
        for n in FILES
        if not (within(n, CORE) or n == "minicluster" or component(n))
        and not any(within(n, t) for t in TOP)
    ]
    assert placed == []


def test_imports_point_one_way():
    wrong = sorted(
        f"{name} -> {target}: {reason}"
        for name, path in FILES.items()
        for target in imported_modules(name, path)
        if (reason := wrong_way(name, target))
    )
    assert wrong == []


def test_every_stated_interface_is_used():
    """An entry no import needs any more is a door left open: remove it."""
    used = {
        (who, what)
        for name, path in FILES.items()
        for target in imported_modules(name, path)
        for who, what in ALLOWED
        if component(name) == who and within(target, what)
    }
    assert set(ALLOWED) - used == set()


@pytest.mark.parametrize(
    ("name", "target", "wrong"),
    [
        ("minicluster.core.config", "minicluster.exporter.registry", True),
        ("minicluster.core.config", "minicluster.core.layout", False),
        ("minicluster.exporter.server", "minicluster.trainer.step", True),
        ("minicluster.trainer.step", "minicluster.track.tracker", False),
        ("minicluster.track.publish", "minicluster.exporter.collectors.process", False),
        ("minicluster.track.publish", "minicluster.exporter.server", True),
        ("minicluster.launcher.job", "minicluster.commands.run_job", True),
        ("minicluster.deploy.doctor", "minicluster.cli", True),
        ("minicluster.commands.stop", "minicluster.commands.run_job", False),
        ("minicluster.commands.doctor", "minicluster.deploy.doctor", False),
        ("minicluster.report.build", "minicluster.launcher.summary", False),
        ("minicluster.report.build", "minicluster.launcher.remote", True),
    ],
)
def test_the_rule_itself(name, target, wrong):
    assert (wrong_way(name, target) is not None) == wrong
