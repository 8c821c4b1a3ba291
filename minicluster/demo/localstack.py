"""Run the monitoring stack on this machine from a rendered tree, as child processes.

The demo and the live-stack tests use this instead of launchd: Prometheus and
Alertmanager with the same command lines their LaunchDaemons use (from
minicluster.render.launchd), and exporters with `python -m minicluster.exporter`. Every service is
started in its own session with its output in a log file, waited on until its readiness
endpoint answers, and stopped by its PID (SIGTERM, then SIGKILL).

    config = local_profile(...)                      # ports come from the config
    write_bundle(config, stack_dir)                  # minicluster.render.bundle
    with LocalStack(config, stack_dir, work_dir) as stack:
        stack.start_exporter(config.master, config_file)
        stack.start_alertmanager()
        prometheus = stack.start_prometheus()
        ...                                          # query prometheus.url
    # everything started is stopped here, in reverse order
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from minicluster.core.config import Config, NodeSettings
from minicluster.render import launchd

READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0


class ServiceError(RuntimeError):
    """A service exited or did not become ready; the message ends with its log's tail."""


def http_url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}"


@dataclass
class Service:
    """One running child process and where to reach it."""

    name: str
    process: subprocess.Popen
    url: str
    log_path: Path
    ready_path: str = "/-/ready"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Poll the readiness endpoint until it answers 200; raise ServiceError otherwise."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServiceError(
                    f"{self.name} exited with status {self.process.returncode} before it was "
                    f"ready; {self.log_path}:\n{self.log_tail()}"
                )
            try:
                response = requests.get(self.url + self.ready_path, timeout=2)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            time.sleep(0.1)
        raise ServiceError(
            f"{self.name} was not ready at {self.url}{self.ready_path} after {timeout:.0f}s "
            f"({last}); {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def start_service(
    name: str,
    command: list[str],
    url: str,
    log_path: Path,
    *,
    ready_path: str = "/-/ready",
    timeout: float = READY_TIMEOUT_SECONDS,
    env: dict[str, str] | None = None,
) -> Service:
    """Start `command` with its output in `log_path` and wait until `url + ready_path` is 200."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C meant for the caller does not reach it, and it is
            # stopped on purpose, by PID.
            start_new_session=True,
            env=env,
        )
    service = Service(name, process, url, log_path, ready_path)
    try:
        service.wait_ready(timeout)
    except ServiceError:
        service.stop()
        raise
    return service


@dataclass
class LocalStack:
    """Services started from the tree `stack_dir` that `minicluster render` wrote.

    Data and logs go below `work_dir`. Ports and addresses are the config's, so render
    and start from the same Config. Use as a context manager, or call stop().
    """

    config: Config
    stack_dir: Path
    work_dir: Path
    services: list[Service] = field(default_factory=list)

    def _started(self, service: Service) -> Service:
        self.services.append(service)
        return service

    def start_prometheus(self, timeout: float = READY_TIMEOUT_SECONDS) -> Service:
        """Prometheus on the master's address and `prometheus.port`; ready = /-/ready."""
        data = self.work_dir / "data" / "prometheus"
        data.mkdir(parents=True, exist_ok=True)
        command = launchd.prometheus_command(
            self.config, str(Path(self.stack_dir) / "prometheus" / "prometheus.yml"), str(data)
        )
        url = http_url(self.config.master.address, self.config.prometheus.port)
        return self._started(
            start_service(
                "prometheus",
                command,
                url,
                self.work_dir / "logs" / "prometheus.log",
                timeout=timeout,
            )
        )

    def start_alertmanager(self, timeout: float = READY_TIMEOUT_SECONDS) -> Service:
        """Alertmanager on the master's address and `alertmanager.port`; ready = /-/ready."""
        data = self.work_dir / "data" / "alertmanager"
        data.mkdir(parents=True, exist_ok=True)
        command = launchd.alertmanager_command(
            self.config,
            str(Path(self.stack_dir) / "alertmanager" / "alertmanager.yml"),
            str(data),
        )
        url = http_url(self.config.master.address, self.config.alertmanager.port)
        return self._started(
            start_service(
                "alertmanager",
                command,
                url,
                self.work_dir / "logs" / "alertmanager.log",
                timeout=timeout,
            )
        )

    def start_exporter(
        self,
        node: NodeSettings,
        config_file: Path,
        *,
        python: str = sys.executable,
        timeout: float = READY_TIMEOUT_SECONDS,
    ) -> Service:
        """`python -m minicluster.exporter --config FILE --node NAME`; ready = /-/healthy.

        `config_file` must hold the same config (Config.to_yaml()) so the exporter
        listens where Prometheus scrapes. `python` defaults to this interpreter.
        """
        command = [
            python,
            "-m",
            "minicluster.exporter",
            "--config",
            str(config_file),
            "--node",
            node.name,
        ]
        url = http_url(node.address, node.exporter_port)
        return self._started(
            start_service(
                f"exporter-{node.name}",
                command,
                url,
                self.work_dir / "logs" / f"exporter-{node.name}.log",
                ready_path="/-/healthy",
                timeout=timeout,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        )

    def stop(self) -> None:
        """Stop every service this stack started, newest first."""
        while self.services:
            self.services.pop().stop()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
