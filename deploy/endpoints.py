"""How deploy's and doctor's probes reach a service from the master, and as whom.

With security.tls every exporter wants a client certificate signed by the cluster CA, and
Prometheus and Alertmanager want the web user's password; the probes run on the master,
which holds exactly what Prometheus itself presents (its tls folder):

    exporters                 https, the cluster CA, prometheus-client.crt/.key
    Prometheus, Alertmanager  https, the cluster CA, basic auth from web-password

Without it every URL is plain http and no argument is added, as before TLS existed.
"""

from __future__ import annotations

from minicluster.core import layout
from minicluster.core.config import Config, NodeSettings
from minicluster.core.controlpki import WEB_USER


def plain_url(address: str, port: int, path: str, scheme: str = "http") -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{scheme}://{host}:{port}{path}"


def url(config: Config, address: str, port: int, path: str) -> str:
    return plain_url(address, port, path, "https" if config.security.tls else "http")


def exporter_url(config: Config, node: NodeSettings, path: str = "/metrics") -> str:
    return url(config, node.address, node.exporter_port, path)


def prometheus_url(config: Config, path: str) -> str:
    return url(config, config.master.address, config.prometheus.port, path)


def alertmanager_url(config: Config, path: str) -> str:
    return url(config, config.master.address, config.alertmanager.port, path)


def grafana_url(config: Config, path: str) -> str:
    return url(config, config.master.address, config.grafana.port, path)


def grafana_credentials(config: Config) -> list[str]:
    """deploy.probe's arguments for Grafana: the cluster CA (its login is its own)."""
    if not config.security.tls:
        return []
    return ["--ca", layout.tls_path(config.master, "ca.crt")]


def exporter_credentials(config: Config) -> list[str]:
    """deploy.probe's arguments for reading an exporter from the master."""
    if not config.security.tls:
        return []
    master = config.master
    return [
        "--ca", layout.tls_path(master, "ca.crt"),
        "--cert", layout.tls_path(master, "prometheus-client.crt"),
        "--key", layout.tls_path(master, "prometheus-client.key"),
    ]  # fmt: skip


def service_credentials(config: Config) -> list[str]:
    """deploy.probe's arguments for Prometheus' and Alertmanager's APIs on the master."""
    if not config.security.tls:
        return []
    master = config.master
    return [
        "--ca", layout.tls_path(master, "ca.crt"),
        "--auth", f"{WEB_USER}:{layout.tls_path(master, 'web-password')}",
    ]  # fmt: skip
