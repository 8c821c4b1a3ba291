"""LaunchDaemon property lists, built with plistlib from the configuration.

Every service runs as a LaunchDaemon in /Library/LaunchDaemons with `UserName`, never as
a LaunchAgent: on macOS 15+ agents running a venv Python cannot reach hosts on the local
network (Local Network Privacy). launchd starts jobs with a bare PATH and no shell rc
files, so programs are absolute paths and the environment is spelled out.
"""

from __future__ import annotations

import plistlib
from pathlib import PurePosixPath

from minicluster.config import Config, NodeSettings

LAUNCH_DAEMONS_DIR = "/Library/LaunchDaemons"
LABEL_PREFIX = "io.minicluster."
BASE_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"


def daemon_plist(
    label: str,
    program_arguments: list[str],
    *,
    user: str,
    working_directory: str,
    log_dir: str,
    environment: dict[str, str] | None = None,
    throttle_seconds: int = 10,
) -> dict:
    """The dict of one LaunchDaemon; every path in it must be absolute."""
    for path in [program_arguments[0], working_directory, log_dir]:
        if not PurePosixPath(path).is_absolute():
            raise ValueError(f"launchd needs absolute paths, got {path!r} in {label}")
    env = {"PATH": BASE_PATH, "PYTHONUNBUFFERED": "1", **(environment or {})}
    short = label.removeprefix(LABEL_PREFIX)
    return {
        "Label": label,
        "ProgramArguments": list(program_arguments),
        "UserName": user,
        "WorkingDirectory": working_directory,
        "EnvironmentVariables": env,
        "RunAtLoad": True,
        "KeepAlive": True,
        # launchd waits this long before respawning a job that exited sooner than it.
        "ThrottleInterval": throttle_seconds,
        # launchd does not rotate these; see docs/macos.md (newsyslog) for rotation.
        "StandardOutPath": f"{log_dir}/{short}.out.log",
        "StandardErrorPath": f"{log_dir}/{short}.err.log",
        "ProcessType": "Background",
    }


def exporter_label() -> str:
    return LABEL_PREFIX + "exporter"


def exporter_plist(config: Config, node: NodeSettings, config_path: str) -> dict:
    """The exporter's LaunchDaemon on `node`; `config_path` is config.yaml on that node."""
    return daemon_plist(
        exporter_label(),
        [node.venv_python, "-m", "exporters", "--config", config_path, "--node", node.name],
        user=node.ssh_user,
        working_directory=node.install_dir,
        log_dir=f"{node.install_dir}/logs",
    )


def dumps(plist: dict) -> bytes:
    return plistlib.dumps(plist, fmt=plistlib.FMT_XML, sort_keys=True)
