"""LaunchDaemon property lists, built with plistlib from the configuration.

Every service runs as a LaunchDaemon in /Library/LaunchDaemons with `UserName`, never as
a LaunchAgent: on macOS 15+ agents running a venv Python cannot reach hosts on the local
network (Local Network Privacy). launchd starts jobs with a bare PATH and no shell rc
files, so programs are absolute paths and the environment is spelled out.
"""

from __future__ import annotations

import plistlib
from pathlib import PurePosixPath

from minicluster.core import layout
from minicluster.core.config import Config, NodeSettings

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
    """The exporter's LaunchDaemon on `node`; `config_path` is config.yaml on that node.

    With security.tls it serves HTTPS and requires a client certificate (exporter-web.yml)."""
    arguments = [
        layout.venv_python(node),
        "-m",
        "minicluster.exporter",
        "--config",
        config_path,
        "--node",
        node.name,
    ]
    if config.security.tls:
        arguments += ["--web-config", layout.tls_path(node, "exporter-web.yml")]
    return daemon_plist(
        exporter_label(),
        arguments,
        user=node.ssh_user,
        working_directory=node.install_dir,
        log_dir=layout.log_dir(node),
    )


def dumps(plist: dict) -> bytes:
    return plistlib.dumps(plist, fmt=plistlib.FMT_XML, sort_keys=True)


# --- the master's monitoring services -------------------------------------------------------
# Paths follow minicluster.core.layout: the rendered tree in <install_dir>/stack, data in
# <install_dir>/data/<service>. Each binary is the configured absolute path (Homebrew's).


def _master_daemon(config: Config, service: str, arguments: list[str]) -> dict:
    master = config.master
    return daemon_plist(
        LABEL_PREFIX + service,
        arguments,
        user=master.ssh_user,
        working_directory=layout.data_dir(master, service),
        log_dir=layout.log_dir(master),
    )


def _listen(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _web_config(config: Config) -> list[str]:
    """HTTPS and basic auth for Prometheus and Alertmanager (their shared web.yml)."""
    if not config.security.tls:
        return []
    return [f"--web.config.file={layout.tls_path(config.master, 'web.yml')}"]


def prometheus_command(config: Config, config_file: str, data_dir: str) -> list[str]:
    """Prometheus' command line; launchd on the master and localstack both use it."""
    prom = config.prometheus
    return [
        prom.binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir}",
        f"--storage.tsdb.retention.time={prom.retention}",
        f"--web.listen-address={_listen(config.master.address, prom.port)}",
        *_web_config(config),
        # No --web.enable-lifecycle: it would let anyone on the LAN POST /-/quit. Deploy
        # reloads a validated config with SIGHUP through launchctl instead.
    ]


def alertmanager_command(config: Config, config_file: str, data_dir: str) -> list[str]:
    """Alertmanager's command line; launchd on the master and localstack both use it."""
    am = config.alertmanager
    return [
        am.binary,
        f"--config.file={config_file}",
        f"--storage.path={data_dir}",
        f"--web.listen-address={_listen(config.master.address, am.port)}",
        *_web_config(config),
        # An empty address turns off high-availability gossip, which otherwise listens on
        # every interface (port 9094).
        "--cluster.listen-address=",
    ]


def prometheus_plist(config: Config) -> dict:
    master = config.master
    return _master_daemon(
        config,
        "prometheus",
        prometheus_command(
            config,
            f"{layout.stack_dir(master)}/prometheus/prometheus.yml",
            layout.data_dir(master, "prometheus"),
        ),
    )


def alertmanager_plist(config: Config) -> dict:
    master = config.master
    return _master_daemon(
        config,
        "alertmanager",
        alertmanager_command(
            config,
            f"{layout.stack_dir(master)}/alertmanager/alertmanager.yml",
            layout.data_dir(master, "alertmanager"),
        ),
    )


def grafana_plist(config: Config) -> dict:
    graf = config.grafana
    ini = f"{layout.stack_dir(config.master)}/grafana/grafana.ini"
    # Homebrew's `grafana` takes a `server` sub-command; the older `grafana-server` does not.
    command = [graf.binary] if graf.binary.endswith("grafana-server") else [graf.binary, "server"]
    return _master_daemon(
        config, "grafana", [*command, f"--config={ini}", f"--homepath={graf.homepath}"]
    )


def master_plists(config: Config) -> dict[str, dict]:
    """Label -> plist of the services that run on the master only."""
    plists = [prometheus_plist(config), alertmanager_plist(config), grafana_plist(config)]
    return {plist["Label"]: plist for plist in plists}
