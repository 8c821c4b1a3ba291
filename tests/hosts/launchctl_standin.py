"""A test-only stand-in for macOS `launchctl` on the simulated (Linux) hosts.

Implements the verbs deploy and doctor use, for the `system` domain:

    launchctl bootstrap system PLIST      load the job and start it (RunAtLoad)
    launchctl bootout system/LABEL        stop it (SIGTERM, SIGKILL after ExitTimeOut), unload
    launchctl kickstart [-k] system/LABEL start it; -k kills a running instance first
    launchctl kill SIGNAL system/LABEL    send a signal (SIGHUP reloads Prometheus)
    launchctl print system/LABEL          state and pid, in launchctl's own layout

A job is started the way launchd starts a daemon, which is what catches
"works in my shell, fails as a service" bugs: the plist's ProgramArguments exactly, with
only its EnvironmentVariables (no PATH, HOME or PYTHONPATH from the caller), in its
WorkingDirectory, as its UserName, stdout/stderr appended to its log paths, in a new
session so it outlives the ssh connection. Not simulated: KeepAlive respawns (a killed job
stays dead, which is what the doctor tests need), launchd's own logging, other domains.

State lives in one JSON file per label under --state DIR (per host). Standard library
only: it runs with whatever interpreter the harness names, before any venv exists.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import plistlib
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path

NOT_FOUND = 113  # launchctl's exit status for "Could not find service"
ALREADY_LOADED = 5  # "Bootstrap failed: 5: Input/output error"
DEFAULT_EXIT_TIMEOUT = 20.0


def _start_ticks(pid: int) -> int | None:
    """The process start time from /proc, to tell our pid from a reused one."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":
        return None  # a zombie has exited
    return int(fields[19])


class Jobs:
    def __init__(self, state_dir: Path):
        self.dir = state_dir
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, label: str) -> Path:
        return self.dir / f"{label}.json"

    def get(self, label: str) -> dict | None:
        try:
            return json.loads(self.path(label).read_text())
        except FileNotFoundError:
            return None

    def put(self, job: dict) -> None:
        tmp = self.path(job["label"]).with_suffix(".tmp")
        tmp.write_text(json.dumps(job))
        tmp.replace(self.path(job["label"]))

    def remove(self, label: str) -> None:
        self.path(label).unlink(missing_ok=True)


def running_pid(job: dict) -> int | None:
    pid = job.get("pid")
    if pid and _start_ticks(pid) == job.get("start_ticks"):
        return pid
    return None


def _open_log(path: str | None):
    if not path:
        return subprocess.DEVNULL
    try:
        return open(path, "ab")  # launchd appends and never rotates
    except OSError:
        return subprocess.DEVNULL


def spawn(job: dict) -> None:
    plist = job["plist"]
    user = plist.get("UserName")
    kwargs: dict = {}
    if user and os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
    stdout = _open_log(plist.get("StandardOutPath"))
    stderr = _open_log(plist.get("StandardErrorPath"))
    try:
        process = subprocess.Popen(
            plist["ProgramArguments"],
            env=dict(plist.get("EnvironmentVariables", {})),
            cwd=plist.get("WorkingDirectory", "/"),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            umask=0o022,
            **kwargs,
        )
    except OSError as exc:
        # launchd loads the job anyway and records the failed spawn.
        job.update(pid=None, start_ticks=None, last_error=f"{exc.strerror}: {exc.filename}")
        return
    job.update(pid=process.pid, start_ticks=_start_ticks(process.pid), last_error=None)
    job["runs"] = job.get("runs", 0) + 1


def stop(job: dict) -> None:
    pid = running_pid(job)
    if pid is None:
        return
    timeout = float(job["plist"].get("ExitTimeOut", DEFAULT_EXIT_TIMEOUT))
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running_pid(job):
        time.sleep(0.05)
    if running_pid(job):
        os.killpg(pid, signal.SIGKILL)
        while running_pid(job):
            time.sleep(0.05)
    job.update(pid=None, start_ticks=None)


def _label(target: str) -> str:
    domain, _, label = target.partition("/")
    if domain != "system" or not label:
        raise SystemExit(f"stand-in launchctl supports only system/<label>, got {target!r}")
    return label


def not_found(label: str) -> int:
    print(f'Could not find service "{label}" in domain for system', file=sys.stderr)
    return NOT_FOUND


def cmd_bootstrap(jobs: Jobs, args: argparse.Namespace) -> int:
    if args.domain != "system":
        raise SystemExit("stand-in launchctl supports only the system domain")
    with open(args.plist, "rb") as handle:
        plist = plistlib.load(handle)
    label = plist["Label"]
    if jobs.get(label):
        print("Bootstrap failed: 5: Input/output error", file=sys.stderr)
        return ALREADY_LOADED
    job = {"label": label, "path": str(Path(args.plist).resolve()), "plist": plist, "runs": 0}
    if plist.get("RunAtLoad") or plist.get("KeepAlive"):
        spawn(job)
    jobs.put(job)
    return 0


def cmd_bootout(jobs: Jobs, args: argparse.Namespace) -> int:
    label = _label(args.target)
    job = jobs.get(label)
    if not job:
        print("Boot-out failed: 113: Could not find specified service", file=sys.stderr)
        return NOT_FOUND
    stop(job)
    jobs.remove(label)
    return 0


def cmd_kickstart(jobs: Jobs, args: argparse.Namespace) -> int:
    label = _label(args.target)
    job = jobs.get(label)
    if not job:
        return not_found(label)
    if running_pid(job):
        if not args.kill:
            return 0  # already running: kickstart without -k does nothing
        stop(job)
    spawn(job)
    jobs.put(job)
    return 0


def cmd_kill(jobs: Jobs, args: argparse.Namespace) -> int:
    label = _label(args.target)
    job = jobs.get(label)
    if not job:
        return not_found(label)
    pid = running_pid(job)
    if pid is None:
        print(f"Could not kill service: 3: No such process ({label})", file=sys.stderr)
        return 3
    name = args.signal.upper()
    number = (
        int(name)
        if name.isdigit()
        else signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    )
    os.kill(pid, number)
    return 0


def cmd_print(jobs: Jobs, args: argparse.Namespace) -> int:
    label = _label(args.target)
    job = jobs.get(label)
    if not job:
        return not_found(label)
    plist = job["plist"]
    pid = running_pid(job)
    lines = [
        f"system/{label} = {{",
        "\tactive count = 1" if pid else "\tactive count = 0",
        f"\tpath = {job['path']}",
        "\ttype = LaunchDaemon",
        f"\tstate = {'running' if pid else 'not running'}",
        "",
        f"\tprogram = {plist['ProgramArguments'][0]}",
        "\targuments = {",
        *[f"\t\t{arg}" for arg in plist["ProgramArguments"]],
        "\t}",
        "",
        f"\tworking directory = {plist.get('WorkingDirectory', '/')}",
        f"\tstdout path = {plist.get('StandardOutPath', '/dev/null')}",
        f"\tstderr path = {plist.get('StandardErrorPath', '/dev/null')}",
        "\tenvironment = {",
        *[f"\t\t{k} => {v}" for k, v in plist.get("EnvironmentVariables", {}).items()],
        "\t}",
        "",
        f"\truns = {job.get('runs', 0)}",
    ]
    if pid:
        lines.append(f"\tpid = {pid}")
    if job.get("last_error"):
        lines.append(f"\tlast exit reason = {job['last_error']}")
    lines.append("}")
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="launchctl")
    parser.add_argument("--state", required=True, type=Path, help="per-host state directory")
    verbs = parser.add_subparsers(dest="verb", required=True)
    bootstrap = verbs.add_parser("bootstrap")
    bootstrap.add_argument("domain")
    bootstrap.add_argument("plist")
    bootstrap.set_defaults(func=cmd_bootstrap)
    bootout = verbs.add_parser("bootout")
    bootout.add_argument("target")
    bootout.set_defaults(func=cmd_bootout)
    kickstart = verbs.add_parser("kickstart")
    kickstart.add_argument("-k", dest="kill", action="store_true")
    kickstart.add_argument("target")
    kickstart.set_defaults(func=cmd_kickstart)
    kill = verbs.add_parser("kill")
    kill.add_argument("signal")
    kill.add_argument("target")
    kill.set_defaults(func=cmd_kill)
    show = verbs.add_parser("print")
    show.add_argument("target")
    show.set_defaults(func=cmd_print)
    args = parser.parse_args(argv)
    jobs = Jobs(args.state)
    # One launchctl at a time per host, like launchd's own serialisation of requests.
    with open(args.state / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return args.func(jobs, args)


if __name__ == "__main__":
    sys.exit(main())
