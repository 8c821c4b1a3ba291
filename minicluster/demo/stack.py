"""Start the demo's stack on this machine, detached, from the rendered tree.

The rendered tree goes where the master keeps it (`<install_dir>/stack`, see
minicluster.core.layout), so the paths inside grafana.ini hold as they do on a Mini.
Services are started by minicluster.demo.localstack (each in its own session, output in a
log file, waited on until ready) and are left running when the demo exits: their PIDs go
to the demo's services.json for `make demo-stop`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from minicluster.core import layout
from minicluster.core.config import Config
from minicluster.demo import services
from minicluster.demo.localstack import LocalStack, Service, http_url, start_service
from minicluster.render import grafana, launchd
from minicluster.render.bundle import write_bundle


def render(config: Config) -> Path:
    """`minicluster render` into the master's stack folder; returns that folder."""
    stack_dir = Path(layout.stack_dir(config.master))
    write_bundle(config, stack_dir)
    return stack_dir


def install_grafana_secrets(config: Config) -> Path:
    """Copy the generated admin password and secret key to where grafana.ini reads them
    (`<install_dir>/secrets/`, as deploy does on the master), mode 0600. Returns the
    admin password file the user reads."""
    files = grafana.secret_files(config)
    for secret in files:
        target = Path(secret.remote)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copyfile(secret.local, target)
        target.chmod(0o600)
    return files[0].local


def grafana_command(config: Config) -> list[str]:
    return launchd.grafana_plist(config)["ProgramArguments"]


def start_grafana(config: Config, log_dir: Path) -> Service:
    url = http_url(config.master.address, config.grafana.port)
    # Grafana creates its database and runs migrations on first start: give it time.
    return start_service(
        "grafana",
        grafana_command(config),
        url,
        log_dir / "grafana.log",
        ready_path="/api/health",
        timeout=120,
    )


def start_stack(
    config: Config, config_file: Path, with_grafana: bool, say
) -> list[services.ServiceEntry]:
    """Start exporters, Alertmanager, Prometheus and (if wanted) Grafana; on any failure
    stop what was started and re-raise. Returns the services' entries."""
    master_dir = Path(config.master.install_dir)
    stack = LocalStack(config, render(config), master_dir)
    started: list[Service] = []
    try:
        for node in config.nodes:
            started.append(stack.start_exporter(node, config_file))
            say(f"exporter of {node.name}: {started[-1].url} (PID {started[-1].pid})")
        started.append(stack.start_alertmanager())
        say(f"alertmanager: {started[-1].url} (PID {started[-1].pid})")
        started.append(stack.start_prometheus())
        say(f"prometheus: {started[-1].url} (PID {started[-1].pid})")
        if with_grafana:
            install_grafana_secrets(config)
            started.append(start_grafana(config, Path(layout.log_dir(config.master))))
            say(f"grafana: {started[-1].url} (PID {started[-1].pid})")
    except BaseException:
        for service in reversed(started):
            service.stop()
        raise
    return [services.entry_for(s.name, s.pid, s.url, s.log_path) for s in started]
