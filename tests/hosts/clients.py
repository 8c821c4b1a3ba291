"""Reading a deployed simulated cluster from the control machine, as the operator does.

With security.tls (the harness config's default) exporters and ranks want the operator's
client certificate and Prometheus and Alertmanager the web user's password, all checked
against the cluster CA under the harness's own pki_dir (never ~/.config):

    exporter_get(config, node)           GET an exporter's /metrics (or another path)
    rank_get(config, address, port)      GET a rank's /metrics
    service_get(config, url)             GET Prometheus' or Alertmanager's API
    prometheus_url / alertmanager_url    where they listen, https when TLS is on
"""

from __future__ import annotations

import requests

from minicluster.core.config import Config, NodeSettings
from minicluster.core.controlpki import WEB_USER, pki_paths


def _scheme(config: Config) -> str:
    return "https" if config.security.tls else "http"


def _url(config: Config, address: str, port: int, path: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{_scheme(config)}://{host}:{port}{path}"


def operator_options(config: Config) -> dict:
    """requests' options for an exporter or a rank: the operator's certificate."""
    if not config.security.tls:
        return {}
    return pki_paths(config).client_tls("operator")


def service_options(config: Config) -> dict:
    """requests' options for Prometheus and Alertmanager: the web user and the CA."""
    if not config.security.tls:
        return {}
    pki = pki_paths(config)
    pki.require(pki.ca_cert)
    return {"auth": (WEB_USER, pki.password()), "verify": str(pki.ca_cert)}


def exporter_url(config: Config, node: NodeSettings, path: str = "/metrics") -> str:
    return _url(config, node.address, node.exporter_port, path)


def prometheus_url(config: Config, path: str = "") -> str:
    return _url(config, config.master.address, config.prometheus.port, path)


def alertmanager_url(config: Config, path: str = "") -> str:
    return _url(config, config.master.address, config.alertmanager.port, path)


def exporter_get(
    config: Config, node: NodeSettings, path: str = "/metrics", timeout: float = 5
) -> requests.Response:
    url = exporter_url(config, node, path)
    return requests.get(url, timeout=timeout, **operator_options(config))


def rank_get(config: Config, address: str, port: int, timeout: float = 5) -> requests.Response:
    url = _url(config, address, port, "/metrics")
    return requests.get(url, timeout=timeout, **operator_options(config))


def service_get(config: Config, url: str, timeout: float = 5, **kwargs) -> requests.Response:
    return requests.get(url, timeout=timeout, **service_options(config), **kwargs)
