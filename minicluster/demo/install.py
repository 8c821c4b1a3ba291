"""Install Prometheus, Alertmanager (and on macOS Grafana) when they are missing.

Debian and Ubuntu: `apt-get` as root, or through `sudo` (which may ask for the password).
Debian does not package Grafana, so the demo runs without it there. macOS: Homebrew,
which has all three; the Homebrew calls are the only macOS-specific code here
(`brew_install`, `homebrew_prefix`), listed in docs/macos.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from minicluster.core.config import Config

DEBIAN_PACKAGES = {"prometheus": "prometheus", "alertmanager": "prometheus-alertmanager"}
HOMEBREW_FORMULAE = {name: name for name in ("prometheus", "alertmanager", "grafana")}


class InstallError(Exception):
    """A service could not be installed; the message says how to do it by hand."""


def installed(path: str) -> bool:
    return Path(path).is_file() and os.access(path, os.X_OK)


def missing_services(config: Config, with_grafana: bool) -> list[str]:
    wanted = {
        "prometheus": config.prometheus.binary,
        "alertmanager": config.alertmanager.binary,
    }
    if with_grafana:
        wanted["grafana"] = config.grafana.binary
    return [name for name, binary in wanted.items() if not installed(binary)]


def _run(argv: list[str]) -> None:
    print("+ " + " ".join(argv), flush=True)
    result = subprocess.run(argv, check=False)
    if result.returncode != 0:
        raise InstallError(f"`{' '.join(argv)}` failed with status {result.returncode}")


def apt_install(services: list[str]) -> None:
    """Debian/Ubuntu: apt-get update + install, as root or with sudo."""
    packages = [DEBIAN_PACKAGES[s] for s in services if s in DEBIAN_PACKAGES]
    if not packages:
        return
    if not shutil.which("apt-get"):
        raise InstallError(
            f"install {', '.join(services)} with your package manager, then run make demo again"
        )
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if not sudo:
            raise InstallError(
                f"not root and no sudo: run `apt-get install {' '.join(packages)}` as root"
            )
        prefix = [sudo]
    env_prefix = [*prefix, "env", "DEBIAN_FRONTEND=noninteractive"]
    _run([*env_prefix, "apt-get", "update", "-qq"])
    _run([*env_prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages])


def brew_install(services: list[str]) -> None:
    """macOS: Homebrew installs each missing formula (no sudo: Homebrew refuses root)."""
    brew = shutil.which("brew") or next(
        (p for p in ("/opt/homebrew/bin/brew", "/usr/local/bin/brew") if installed(p)), None
    )
    if not brew:
        raise InstallError("Homebrew is not installed: see https://brew.sh, then make demo again")
    _run([brew, "install", *[HOMEBREW_FORMULAE[s] for s in services]])


def homebrew_prefix(formula: str) -> Path | None:
    """macOS: where Homebrew keeps a formula (`brew --prefix grafana`), if installed."""
    brew = shutil.which("brew")
    if not brew:
        return None
    result = subprocess.run(
        [brew, "--prefix", formula], capture_output=True, text=True, check=False
    )
    path = Path(result.stdout.strip())
    return path if result.returncode == 0 and path.is_dir() else None


def install_missing(config: Config) -> list[str]:
    """Install what the demo needs and this platform offers; returns what was installed."""
    on_mac = sys.platform == "darwin"
    missing = missing_services(config, with_grafana=on_mac)
    if not missing:
        return []
    if on_mac:
        brew_install(missing)
    else:
        apt_install(missing)
    return missing
