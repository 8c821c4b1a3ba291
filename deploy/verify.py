"""After the run, from the master: is what deploy installed actually working?

    every node's exporter answers /metrics (from the master, as Prometheus scrapes it)
    Prometheus is ready, `prometheus_config_last_reload_successful` is 1 (after a reload,
    its reload timestamp moved), and every rendered rule group is loaded
    Alertmanager is ready
    Grafana (where it runs) knows every provisioned dashboard uid

The probes run on the master with its base interpreter (deploy.probe), over https with
the master's credentials when security.tls (deploy.endpoints).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from pyinfra.api import Host

from minicluster.core import layout
from minicluster.core.config import Config, NodeSettings
from minicluster.deploy import endpoints, versions
from minicluster.deploy.probe import remote_command
from minicluster.deploy.stack import Stack

EXPORTER_WAIT_SECONDS = 60
SERVICE_WAIT_SECONDS = 60
RELOAD_WAIT_SECONDS = 30


class VerifyError(RuntimeError):
    pass


@dataclass
class MasterProbe:
    """Runs deploy.probe on the master host over its existing pyinfra connection."""

    host: Host
    python: str

    def run(self, *args: str) -> dict:
        ok, output = self.host.run_shell_command(remote_command(self.python, *args))
        if not ok or not output.stdout_lines:
            raise VerifyError(f"probe on {self.host.name} failed: {output.stderr or output.stdout}")
        return json.loads(output.stdout_lines[-1])

    def get(
        self, url: str, wait: float = 0, auth: str | None = None, credentials: list[str] = ()
    ) -> dict:
        args = ["http", url, "--wait", str(wait), *credentials]
        if auth:
            args += ["--auth", auth]
        return self.run(*args)

    def exporter(self, config: Config, node: NodeSettings, wait: float = 0) -> dict:
        url = endpoints.exporter_url(config, node)
        return self.get(url, wait, credentials=endpoints.exporter_credentials(config))

    def prometheus(self, config: Config, path: str, wait: float = 0) -> dict:
        url = endpoints.prometheus_url(config, path)
        return self.get(url, wait, credentials=endpoints.service_credentials(config))

    def alertmanager(self, config: Config, path: str, wait: float = 0) -> dict:
        url = endpoints.alertmanager_url(config, path)
        return self.get(url, wait, credentials=endpoints.service_credentials(config))

    def prometheus_metric(self, config: Config, name: str) -> float | None:
        """A sample from Prometheus' own /metrics (no scrape needed, unlike a query)."""
        result = self.prometheus(config, "/metrics")
        if result.get("status") != 200:
            return None
        for line in result["body"].splitlines():
            metric, _, value = line.partition(" ")
            if metric == name:
                return float(value)
        return None


def last_reload_timestamp(probe: MasterProbe, config: Config) -> float | None:
    return probe.prometheus_metric(
        config, "prometheus_config_last_reload_success_timestamp_seconds"
    )


def refusals(probe: MasterProbe, config: Config) -> str:
    """With TLS: the master's exporter wants a client certificate, Prometheus and
    Alertmanager a password (asked with the CA only: a client that trusts the server but
    proves nothing)."""
    ca_only = ["--ca", layout.tls_path(config.master, "ca.crt")]
    exporter = probe.get(endpoints.exporter_url(config, config.master), credentials=ca_only)
    if exporter.get("status") is not None:
        raise VerifyError(
            f"the exporter on {config.master.name} answered {exporter['status']} to a client "
            "without a certificate: its web-config does not require one"
        )
    for name, url in (
        ("Prometheus", endpoints.prometheus_url(config, "/api/v1/status/buildinfo")),
        ("Alertmanager", endpoints.alertmanager_url(config, "/api/v2/status")),
    ):
        status = probe.get(url, credentials=ca_only).get("status")
        if status != 401:
            raise VerifyError(f"{name} answered {status} without credentials, not 401")
    return (
        "without credentials: the exporter refuses the connection, Prometheus and "
        "Alertmanager answer 401"
    )


def verify(
    probe: MasterProbe,
    config: Config,
    rendered: Stack,
    *,
    grafana_present: bool,
    reload_before: float | None,
) -> list[str]:
    """Raise VerifyError naming what is wrong; return what was confirmed."""
    confirmed = []
    for node in config.nodes:
        result = probe.exporter(config, node, EXPORTER_WAIT_SECONDS)
        if result.get("status") != 200:
            raise VerifyError(
                f"the exporter on {node.name} does not answer from {config.master.name}: "
                f"{result.get('error')} (see {layout.log_dir(node)}/exporter.err.log there)"
            )
    confirmed.append(f"{len(config.nodes)} exporters answer /metrics from {config.master.name}")

    master = config.master
    if probe.prometheus(config, "/-/ready", SERVICE_WAIT_SECONDS).get("status") != 200:
        raise VerifyError("Prometheus is not ready (see prometheus.err.log on the master)")
    if reload_before is not None:
        deadline = time.monotonic() + RELOAD_WAIT_SECONDS
        while (last_reload_timestamp(probe, config) or 0) <= reload_before:
            if time.monotonic() > deadline:
                raise VerifyError("Prometheus did not reload its configuration after SIGHUP")
            time.sleep(0.5)
    if probe.prometheus_metric(config, "prometheus_config_last_reload_successful") != 1:
        raise VerifyError("prometheus_config_last_reload_successful is not 1: Prometheus "
                          "rejected its configuration (see prometheus.err.log)")  # fmt: skip
    rules = probe.prometheus(config, "/api/v1/rules")
    loaded = {group["name"] for group in json.loads(rules["body"])["data"]["groups"]}
    missing = rendered.rule_groups() - loaded
    if missing:
        raise VerifyError(f"Prometheus has not loaded rule groups: {', '.join(sorted(missing))}")
    confirmed.append(
        f"Prometheus reloaded its config successfully; {len(loaded)} rule groups loaded"
    )

    if probe.alertmanager(config, "/-/ready", SERVICE_WAIT_SECONDS).get("status") != 200:
        raise VerifyError("Alertmanager is not ready (see alertmanager.err.log on the master)")
    confirmed.append("Alertmanager is ready")
    if config.security.tls:
        confirmed.append(refusals(probe, config))

    if grafana_present:
        graf = config.grafana
        base = endpoints.grafana_url(config, "")  # guarded by its own login
        ca = endpoints.grafana_credentials(config)
        if (
            probe.get(base + "/api/health", SERVICE_WAIT_SECONDS, credentials=ca).get("status")
            != 200
        ):
            raise VerifyError("Grafana does not answer /api/health (see grafana.err.log)")
        auth = f"{graf.admin_user}:{layout.secret_path(master, 'grafana-admin-password')}"
        # Grafana's dashboard API (/apis, not the deprecated /api/dashboards): v1 on 13,
        # v1beta1 on 12; the group lists the versions this Grafana serves.
        group = probe.get(base + versions.DASHBOARD_API_GROUP, SERVICE_WAIT_SECONDS, auth, ca)
        if group.get("status") != 200:
            raise VerifyError(f"Grafana has no dashboard API: {group.get('error')}")
        try:
            paths = {
                uid: versions.dashboard_api_path(json.loads(group["body"]), uid)
                for uid in rendered.dashboard_uids()
            }
        except ValueError as exc:
            raise VerifyError(str(exc)) from exc
        for uid, path in paths.items():
            # Provisioning runs after start; give it the same grace as the health check.
            found = probe.get(base + path, SERVICE_WAIT_SECONDS, auth, ca)
            if found.get("status") != 200:
                raise VerifyError(
                    f"Grafana has no dashboard with uid {uid!r}: {found.get('error')}"
                )
        confirmed.append(f"Grafana has all {len(rendered.dashboard_uids())} dashboards")
    return confirmed
