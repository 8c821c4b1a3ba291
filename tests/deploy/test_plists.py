"""The LaunchDaemon plists: valid, absolute paths only, nothing under a TCC folder."""

from __future__ import annotations

import plistlib
from pathlib import PurePosixPath

import pytest

from minicluster.core.config import TCC_PROTECTED, load_config
from minicluster.render.bundle import launchd_files
from tests.deploy.conftest import Deployed
from tests.support import EXAMPLE_CONFIG

REPO_CONFIG = EXAMPLE_CONFIG


def paths_in(plist: dict) -> list[str]:
    """Every path the plist names: program, arguments' path values, directories, logs."""
    found = [plist["ProgramArguments"][0], plist["WorkingDirectory"]]
    found += [plist["StandardOutPath"], plist["StandardErrorPath"]]
    for argument in plist["ProgramArguments"][1:]:
        value = argument.split("=", 1)[-1]
        if "/" in value and not value.startswith("http"):
            found.append(value)
    return found


def check_plist(data: bytes, where: str) -> dict:
    plist = plistlib.loads(data)
    assert plist["Label"].startswith("io.minicluster."), where
    assert plist["UserName"], where  # a LaunchDaemon that runs as the configured user
    assert plist["KeepAlive"] is True and plist["RunAtLoad"] is True, where
    assert plist["ThrottleInterval"] >= 1, where
    assert plist["EnvironmentVariables"]["PYTHONUNBUFFERED"] == "1", where
    assert plist["EnvironmentVariables"]["PATH"] == "/usr/bin:/bin:/usr/sbin:/sbin", where
    for path in paths_in(plist):
        assert PurePosixPath(path).is_absolute(), f"{where}: {path} is relative"
        parts = PurePosixPath(path).parts
        assert not (parts[:2] == ("/", "Users") and len(parts) > 3 and parts[3] in TCC_PROTECTED)
        assert not set(parts) & set(TCC_PROTECTED), f"{where}: {path} is under a TCC folder"
    return plist


def test_the_default_configs_plists_are_valid_for_a_mac():
    files = launchd_files(load_config(REPO_CONFIG))
    labels = {path.split("/", 2)[2] for path in files}
    assert labels == {
        "io.minicluster.exporter.plist",
        "io.minicluster.prometheus.plist",
        "io.minicluster.alertmanager.plist",
        "io.minicluster.grafana.plist",
    }
    for path, data in files.items():
        plist = check_plist(data, path)
        assert plist["ProgramArguments"][0].startswith(("/opt/homebrew/", "/opt/minicluster/"))


@pytest.mark.e2e
def test_the_installed_plists_are_valid(deployed: Deployed):
    seen = 0
    for host in deployed.cluster.hosts.values():
        for file in sorted(host.path("/Library/LaunchDaemons").glob("*.plist")):
            plist = check_plist(file.read_bytes(), f"{host.name}:{file.name}")
            assert file.name == f"{plist['Label']}.plist"
            assert oct(file.stat().st_mode & 0o777) == "0o644"  # launchd refuses writable plists
            seen += 1
    assert seen == 4  # two exporters, Prometheus and Alertmanager (no Grafana binary here)
