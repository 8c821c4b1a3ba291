"""Installing the demo's services: Homebrew on macOS, apt-get (as root or with sudo) on
Debian, driven against stand-in `brew`, `apt-get` and `sudo` that record their arguments."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from minicluster.core.config import parse_config
from minicluster.core.profiles import local_profile
from minicluster.demo import install

# What `brew --prefix grafana` prints on an Apple Silicon Mac (Homebrew 4.x).
BREW_PREFIX_OUTPUT = "/opt/homebrew/opt/grafana\n"


def fake_tool(bin_dir: Path, name: str, log: Path, stdout: str = "") -> None:
    script = bin_dir / name
    script.write_text(
        f'#!/bin/sh\necho "{name} $*" >> {log}\n' + (f"printf '%s' '{stdout}'\n" if stdout else "")
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return bin_dir, log


def missing_everything(tmp_path: Path):
    config = local_profile(tmp_path / "state")
    data = config.model_dump(mode="json")
    for section in ("prometheus", "alertmanager", "grafana"):
        data[section]["binary"] = str(tmp_path / "nowhere" / section)
    return parse_config(data, "test")


def test_macos_installs_all_three_with_homebrew(
    tmp_path: Path, tools, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir, log = tools
    fake_tool(bin_dir, "brew", log)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert install.install_missing(missing_everything(tmp_path)) == [
        "prometheus",
        "alertmanager",
        "grafana",
    ]
    assert log.read_text() == "brew install prometheus alertmanager grafana\n"


def test_homebrew_prefix_reads_brew_output(tmp_path: Path, tools) -> None:
    bin_dir, log = tools
    prefix = tmp_path / BREW_PREFIX_OUTPUT.strip().lstrip("/")
    prefix.mkdir(parents=True)
    fake_tool(bin_dir, "brew", log, stdout=f"{prefix}\n")
    assert install.homebrew_prefix("grafana") == prefix
    assert log.read_text() == "brew --prefix grafana\n"


def test_debian_as_root_uses_apt_without_grafana(
    tmp_path: Path, tools, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir, log = tools
    fake_tool(bin_dir, "apt-get", log)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(install.os, "geteuid", lambda: 0)
    assert install.install_missing(missing_everything(tmp_path)) == ["prometheus", "alertmanager"]
    assert log.read_text().splitlines() == [
        "apt-get update -qq",
        "apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager",
    ]


def test_debian_as_a_user_goes_through_sudo(
    tmp_path: Path, tools, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir, log = tools
    fake_tool(bin_dir, "apt-get", log)
    fake_tool(bin_dir, "sudo", log)
    monkeypatch.setattr(install.os, "geteuid", lambda: 1000)
    install.apt_install(["alertmanager"])
    calls = log.read_text().splitlines()
    assert calls[0] == "sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq"
    assert calls[1].endswith(
        "apt-get install -y -qq --no-install-recommends prometheus-alertmanager"
    )


def test_debian_user_without_sudo_is_told_what_to_run(
    tools, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir, log = tools
    fake_tool(bin_dir, "apt-get", log)
    monkeypatch.setattr(install.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(
        install.shutil, "which", lambda name: None if name == "sudo" else str(bin_dir / name)
    )
    with pytest.raises(install.InstallError, match=r"run `apt-get install prometheus` as root"):
        install.apt_install(["prometheus"])
    assert not log.exists()
