"""Start each node's command, stream its output, stop it by PID, fetch its rank log files.

Remote nodes are reached with the OpenSSH client run as a subprocess rather than paramiko:
it honours the user's ~/.ssh/config, agent, known_hosts and ProxyJump exactly as their own
`ssh <node>` does; BatchMode makes a missing key fail at once instead of prompting;
and streaming is a plain pipe. A loopback node is this machine and runs as a child process
with no ssh at all, so `--local` needs no ssh client or server.

Every process is started in a session of its own, so a Ctrl-C on the terminal reaches only
the launcher, which then stops each node deliberately (see reap.py).
"""

from __future__ import annotations

import io
import json
import os
import queue
import shlex
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from minicluster.core.config import NodeSettings
from minicluster.core.ssh import CONNECT_TIMEOUT_SECONDS, SshTarget
from minicluster.launcher import reap
from minicluster.launcher.plan import NodeCommand

# The remote shell prints its PID, then execs the command: that PID is torchrun's.
PID_MARK = "minicluster-pid="
# ssh's own exit status when the connection (not the remote command) failed.
SSH_CONNECTION_FAILED = 255


class LauncherError(Exception):
    """A node could not be reached or driven; the message names the node."""


@dataclass(frozen=True)
class SshSettings:
    """The launcher's ssh: each node's SshTarget, plus run-job's --ssh-config/--ssh-option."""

    config_file: str | None = None  # ssh -F
    options: tuple[str, ...] = ()  # extra ssh -o options
    connect_timeout: int = CONNECT_TIMEOUT_SECONDS

    def target(self, node: NodeSettings) -> SshTarget:
        return SshTarget.of(
            node, config_file=self.config_file, connect_timeout=self.connect_timeout
        )

    def argv(self, node: NodeSettings, remote_command: str) -> list[str]:
        ssh = shutil.which("ssh")
        if not ssh:
            raise LauncherError(
                f"{node.name}: ssh is not installed (install openssh-client); "
                "nodes on 127.0.0.1 and --local need no ssh"
            )
        return self.target(node).openssh_argv(remote_command, self.options, ssh=ssh)

    def run(
        self, node: NodeSettings, command: list[str], timeout: float, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess:
        """Run `command` (an argv, quoted for the remote shell) on `node`; capture bytes."""
        try:
            return subprocess.run(
                self.argv(node, shlex.join(command)),
                input=stdin,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LauncherError(f"{node.name}: ssh timed out after {timeout:.0f}s") from None


def remote_shell_command(command: NodeCommand) -> str:
    env = [f"{key}={value}" for key, value in command.env.items()]
    # The PID is printed first either way: a failing cd still leaves the launcher a PID.
    cd = f"cd {shlex.quote(command.cwd)} && " if command.cwd else ""
    return f"echo {PID_MARK}$$; {cd}exec " + shlex.join(["/usr/bin/env", *env, *command.argv])


# Items on the output queue: (node name, line or None at end of stream, arrival time).
OutputItem = tuple[str, str | None, float]


class NodeProcess:
    """One node's torchrun: started here or over ssh; its lines go to `output`."""

    def __init__(
        self, command: NodeCommand, job_id: str, output: queue.Queue, ssh: SshSettings
    ) -> None:
        self.command, self.job_id, self.output, self.ssh = command, job_id, output, ssh
        self.node = command.node
        self.pid: int | None = None  # torchrun's PID on its node
        # False once ssh could not connect to stop it: later steps skip the node.
        self.reachable = True
        self.proc: subprocess.Popen | None = None
        self._pid_seen = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        if self.command.runs_here:
            argv, env = self.command.argv, {**os.environ, **self.command.env}
        else:
            argv, env = self.ssh.argv(self.node, remote_shell_command(self.command)), None
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=self.command.cwd if self.command.runs_here else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            text=True,
            errors="replace",
            bufsize=1,
        )
        if self.command.runs_here:
            self.pid = self.proc.pid
            self._pid_seen.set()
        self._reader = threading.Thread(target=self._read, name=f"read-{self.node.name}")
        self._reader.daemon = True
        self._reader.start()

    def _read(self) -> None:
        assert self.proc and self.proc.stdout
        for raw in self.proc.stdout:
            line = raw.rstrip("\n")
            if not self._pid_seen.is_set() and line.startswith(PID_MARK):
                self.pid = int(line.removeprefix(PID_MARK))
                self._pid_seen.set()
                continue
            self.output.put((self.node.name, line, time.time()))
        self.output.put((self.node.name, None, time.time()))

    def poll(self) -> int | None:
        return self.proc.poll() if self.proc else None

    @property
    def connection_lost(self) -> bool:
        """The streaming ssh ended on a connection failure (ServerAlive gave up, say)."""
        return not self.command.runs_here and self.poll() == SSH_CONNECTION_FAILED

    def wait(self, timeout: float | None = None) -> int | None:
        if not self.proc:
            return None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._reader:
            self._reader.join(timeout=5)
        return code

    def stop(self, grace: float = 5.0) -> str:
        """Stop this node's job by the PID started; returns a one-line account of it."""
        if not self.proc:
            return f"{self.node.name}: not started"
        if self.command.runs_here:
            report = reap.stop_tree(self.proc.pid, grace)
            self.proc.poll()
            return describe(self.node.name, report)
        if self.proc.poll() is None:
            self._pid_seen.wait(timeout=min(2.0, grace))
        message = f"{self.node.name}: no remote PID seen"
        if self.pid is not None:
            reaper = [self.node.venv_python, "-m", "minicluster.launcher.reap"]
            reaper += ["--grace", str(grace), "--expect", self.job_id, str(self.pid)]
            try:
                result = self.ssh.run(
                    self.node, reaper, timeout=grace + self.ssh.connect_timeout + 10
                )
                self.reachable = result.returncode != SSH_CONNECTION_FAILED
                message = describe_remote(self.node.name, self.pid, result)
            except LauncherError as exc:
                self.reachable = False
                message = f"{exc}; could not stop PID {self.pid} there"
        # The streaming ssh client ends once its remote command has; make sure it does.
        if self.wait(timeout=5) is None:
            self.proc.terminate()
            self.wait(timeout=5)
        return message


def describe(name: str, report: reap.StopReport) -> str:
    if not report.found:
        return f"{name}: PID {report.pid} had already exited"
    children = len(report.terminated) + len(report.killed) - 1
    text = f"{name}: stopped PID {report.pid} and {children} children"
    if report.killed:
        text += f" ({len(report.killed)} needed SIGKILL)"
    if report.survivors:
        text += f"; STILL RUNNING: {report.survivors}"
    return text


def describe_remote(name: str, pid: int, result: subprocess.CompletedProcess) -> str:
    lines = result.stdout.decode(errors="replace").strip().splitlines()
    try:
        report = reap.StopReport(**json.loads(lines[-1]))
    except (IndexError, ValueError, TypeError):
        detail = result.stderr.decode(errors="replace").strip().splitlines()
        reason = detail[-1] if detail else f"exit status {result.returncode}"
        return f"{name}: stopping PID {pid} failed: {reason}"
    return describe(name, report)


# --- files ---------------------------------------------------------------------------------


def fetch_rank_logs(
    node: NodeSettings, remote_dir: str, dest: Path, ssh: SshSettings, timeout: float = 60
) -> list[Path]:
    """Copy `remote_dir/rank*.log` of `node` into `dest`; returns the files written."""
    dest.mkdir(parents=True, exist_ok=True)
    if node.is_loopback:
        copied = []
        for path in sorted(Path(remote_dir).glob("rank*.log")):
            target = dest / path.name
            if path.resolve() != target.resolve():
                shutil.copyfile(path, target)
            copied.append(target)
        return copied
    # One round trip per node; tar is on every Mac and Linux box.
    script = f"cd {shlex.quote(remote_dir)} && exec tar -cf - rank*.log"
    try:
        result = subprocess.run(
            ssh.argv(node, script), capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise LauncherError(
            f"{node.name}: fetching {remote_dir} took over {timeout:.0f}s"
        ) from None
    if result.returncode != 0:
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        raise LauncherError(
            f"{node.name}: cannot fetch {remote_dir}: "
            + (reason[-1] if reason else f"exit status {result.returncode}")
        )
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as archive:
        names = [m.name for m in archive.getmembers() if m.isfile()]
        archive.extractall(dest, filter="data")
    return [dest / name for name in sorted(names)]


def local_python() -> str:
    """The interpreter loopback nodes run: this one, by absolute path."""
    return sys.executable
