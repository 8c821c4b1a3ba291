"""launchd: what to do with one LaunchDaemon, given what changed.

    not loaded                       launchctl bootstrap system <plist>
    its plist changed                bootout, then bootstrap (kickstart does not reread it)
    its program or inputs changed    launchctl kickstart -k system/<label>   (restart)
    its config changed, reloadable   launchctl kill SIGHUP system/<label>    (reload in place)
    loaded but not running           launchctl kickstart system/<label>      (start)
    otherwise                        nothing: the running process is left alone

Prometheus and Alertmanager reload on SIGHUP, so a new config or rule file never restarts
them. Sending the signal through launchctl needs root on the master, which keeps the
reload stricter than Prometheus' HTTP lifecycle endpoint (anyone who can reach it could
reload or quit Prometheus; it cannot be limited by path, see docs/deploy.md).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from minicluster.deploy.facts import LaunchdJob
from minicluster.render.launchd import LAUNCH_DAEMONS_DIR


@dataclass(frozen=True)
class Change:
    """Why a service needs attention; all False means leave it alone."""

    plist: bool = False  # the plist file differs
    restart: bool = False  # program, environment or config it reads only at start
    reload: bool = False  # config it rereads on SIGHUP


def plist_path(label: str) -> str:
    return f"{LAUNCH_DAEMONS_DIR}/{label}.plist"


def bootstrap_command(label: str) -> str:
    plist = shlex.quote(plist_path(label))
    # A job that was just booted out can take a moment to leave launchd: retry once.
    return f"launchctl bootstrap system {plist} || (sleep 2 && launchctl bootstrap system {plist})"


def service_commands(label: str, job: LaunchdJob | None, change: Change) -> tuple[str, list[str]]:
    """(what happens, the launchctl commands) for one service."""
    target = f"system/{label}"
    if job is None:
        return "start (bootstrap)", [bootstrap_command(label)]
    if change.plist:
        return "restart with the new plist (bootout, bootstrap)", [
            f"launchctl bootout {target}",
            bootstrap_command(label),
        ]
    if change.restart:
        return "restart (kickstart -k)", [f"launchctl kickstart -k {target}"]
    if not job.running:
        return "start (kickstart)", [f"launchctl kickstart {target}"]
    if change.reload:
        return "reload (SIGHUP)", [f"launchctl kill SIGHUP {target}"]
    return "", []


def bootout_commands(label: str, job: LaunchdJob | None) -> list[str]:
    return [f"launchctl bootout system/{label}"] if job is not None else []
