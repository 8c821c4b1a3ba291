"""The exporter's LaunchDaemon plist starts the exporter with nothing but what it says.

launchd gives a job no shell, no rc files and no PYTHONPATH: only ProgramArguments,
EnvironmentVariables and WorkingDirectory. The rendered plist is parsed back with plistlib
and its ProgramArguments run with exactly its environment (nothing inherited) in its
working directory; /metrics must answer.

How the interpreter the plist names is made (the choice, and why): a real venv at
`<install_dir>/venv`, created `--without-pip` from the base interpreter this project's
venv was made from (as deploy makes one from the node's `python`), with the project
installed into it NON-editable from a wheel built from a copy of the sources. So
`minicluster.exporter` is importable only because it is installed in that venv, never via
the repository or a path hack; the test checks that it is not importable before the
install. The third-party dependencies (prometheus_client, psutil, pydantic, ...) come
from this project's venv through one .pth line: installing them from PyPI would make the
test slow and network-bound, and they are not what can go wrong here (deploy pip-installs them).
"""

from __future__ import annotations

import plistlib
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import yaml

from minicluster.core.config import load_config
from minicluster.render.launchd import dumps, exporter_plist
from tests.exporter.conftest import REPO, get, value
from tests.support import free_port, wait_until

PACKAGES = ["minicluster", "exporters", "trainer", "deploy"]


def build_wheel(tmp_path: Path) -> Path:
    """A wheel of the project, built from a copy so the work tree is left untouched."""
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    readme = REPO / "README.md"
    (source / "README.md").write_text(readme.read_text() if readme.exists() else "minicluster\n")
    for package in PACKAGES:
        if (REPO / package).is_dir():
            shutil.copytree(
                REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
            )
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"),
            *("--no-index", "-w", str(wheels), str(source)),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return next(wheels.glob("minicluster-*.whl"))


def make_venv(venv: Path) -> Path:
    subprocess.run(
        [sys._base_executable, "-m", "venv", "--without-pip", str(venv)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        env={},
    ).stdout.strip()
    # Dependencies only: .pth lines add directories to sys.path, but .pth files inside
    # them (this venv's editable hook for the project) are not run, so the project itself
    # is not importable through this line.
    Path(purelib, "project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def importable(python: str, env: dict, cwd: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, "-c", "import minicluster.exporter.cli as c; print(c.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


def test_rendered_plist_starts_the_exporter_with_only_its_own_environment(tmp_path):
    install_dir = tmp_path / "opt" / "minicluster"
    port = free_port()
    config_path = tmp_path / "config.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "nodes": [
                    {
                        "name": "mini-red",
                        "address": "127.0.0.1",
                        "role": "master",
                        "ssh_user": "admin",
                        "install_dir": str(install_dir),
                        "exporter_port": port,
                        "python": sys._base_executable,
                    }
                ],
                # The plist's environment is under test here, not its TLS files.
                "security": {"tls": False},
            }
        )
    )
    config = load_config(config_path)
    node = config.node("mini-red")
    plist = plistlib.loads(dumps(exporter_plist(config, node, str(config_path))))

    argv, env, cwd = (
        plist["ProgramArguments"],
        plist["EnvironmentVariables"],
        plist["WorkingDirectory"],
    )
    assert argv[0] == node.venv_python == str(install_dir / "venv" / "bin" / "python")
    assert env["PYTHONUNBUFFERED"] == "1" and "PYTHONPATH" not in env
    assert cwd == str(install_dir)

    Path(cwd).mkdir(parents=True)
    python = make_venv(install_dir / "venv")
    assert str(python) == argv[0]
    missing = importable(argv[0], env, cwd)
    assert missing.returncode != 0 and "No module named 'minicluster'" in missing.stderr

    wheel = build_wheel(tmp_path)
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", argv[0], "install", "-q"),
            *("--no-deps", "--no-index", str(wheel)),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    found = importable(argv[0], env, cwd)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip().startswith(str(install_dir / "venv"))

    Path(plist["StandardOutPath"]).parent.mkdir(parents=True)
    with (
        open(plist["StandardOutPath"], "a") as out,
        open(plist["StandardErrorPath"], "a") as err,
    ):
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err)
    try:
        url = f"http://127.0.0.1:{port}"
        response = wait_until(
            lambda: get(url + "/metrics", timeout=2), "the launchd job's /metrics"
        )
        assert response.status_code == 200
        assert value(response.text, "node_scrape_collector_success", collector="cpu") == 1
        assert get(url + "/sd").json() == []  # reads <install_dir>/run, empty
        process.terminate()  # what launchctl bootout sends
        assert process.wait(20) == 0  # within launchd's default ExitTimeOut
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = Path(plist["StandardOutPath"]).read_text()
    assert f"node mini-red listening on http://127.0.0.1:{port}" in log
