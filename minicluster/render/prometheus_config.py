"""prometheus.yml for the master, from the config.

Jobs (the contract every dashboard, rule and test relies on):
- `node`: every node's exporter, with target labels `node` and `role`;
- `trainer`: HTTP service discovery from every exporter's `/sd`, so ranks appear and
  disappear with the job (labels `job_id`, `rank`, `local_rank`, `node` come from `/sd`);
- `prometheus`, `alertmanager`: self-scrapes of the master's services.
The keys used are the subset that both Prometheus 2.42 (Debian, CI) and 3.x (Homebrew)
accept.

With `security.tls` (the default) every endpoint is HTTPS: `node` and `trainer` scrapes and
the `/sd` lookups present Prometheus' client certificate and check the node's against the
cluster CA; the self-scrapes and the alerting section log in as the web user, whose password
Prometheus reads from a file (no credential is ever written here). Paths are the master's
tls folder (minicluster.core.layout).
"""

from __future__ import annotations

from minicluster.core import layout
from minicluster.core.config import Config, NodeSettings
from minicluster.core.controlpki import WEB_USER
from minicluster.render.yamltext import dump_yaml

RULES_GLOB = "rules/*.yml"


def _seconds(value: int) -> str:
    return f"{value}s"


def _host_port(address: str, port: int) -> str:
    # An IPv6 literal needs brackets in host:port.
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _node_labels(node: NodeSettings) -> dict[str, str]:
    return {"node": node.name, "role": node.role}


def exporter_url(node: NodeSettings, path: str = "", tls: bool = False) -> str:
    scheme = "https" if tls else "http"
    return f"{scheme}://{_host_port(node.address, node.exporter_port)}{path}"


def client_tls(master: NodeSettings) -> dict:
    """What Prometheus presents to exporters and ranks, and the CA it checks them with."""
    return {
        "scheme": "https",
        "tls_config": {
            "ca_file": layout.tls_path(master, "ca.crt"),
            "cert_file": layout.tls_path(master, "prometheus-client.crt"),
            "key_file": layout.tls_path(master, "prometheus-client.key"),
        },
    }


def service_login(master: NodeSettings) -> dict:
    """How Prometheus reaches itself and Alertmanager: HTTPS and the web user's password."""
    return {
        "scheme": "https",
        "basic_auth": {
            "username": WEB_USER,
            "password_file": layout.tls_path(master, "web-password"),
        },
        "tls_config": {"ca_file": layout.tls_path(master, "ca.crt")},
    }


def prometheus_config(config: Config) -> dict:
    prom = config.prometheus
    master = config.master
    tls = config.security.tls
    # Both empty without TLS: the plain rendering is unchanged key for key.
    scrape_tls = client_tls(master) if tls else {}
    login = service_login(master) if tls else {}
    sd_tls = {"tls_config": scrape_tls["tls_config"]} if tls else {}
    return {
        "global": {
            "scrape_interval": _seconds(prom.scrape_interval_seconds),
            "scrape_timeout": _seconds(prom.scrape_timeout_seconds),
            "evaluation_interval": _seconds(prom.evaluation_interval_seconds),
            "external_labels": {"cluster": config.cluster.name},
        },
        "alerting": {
            "alertmanagers": [
                {
                    "api_version": "v2",
                    **login,
                    "static_configs": [
                        {"targets": [_host_port(master.address, config.alertmanager.port)]}
                    ],
                }
            ]
        },
        # Relative to this file: the rendered tree can live anywhere.
        "rule_files": [RULES_GLOB],
        "scrape_configs": [
            {
                "job_name": "prometheus",
                **login,
                "static_configs": [
                    {
                        "targets": [_host_port(master.address, prom.port)],
                        "labels": _node_labels(master),
                    }
                ],
            },
            {
                "job_name": "alertmanager",
                **login,
                "static_configs": [
                    {
                        "targets": [_host_port(master.address, config.alertmanager.port)],
                        "labels": _node_labels(master),
                    }
                ],
            },
            {
                "job_name": "node",
                **scrape_tls,
                "static_configs": [
                    {
                        "targets": [_host_port(node.address, node.exporter_port)],
                        "labels": _node_labels(node),
                    }
                    for node in config.nodes
                ],
            },
            {
                "job_name": "trainer",
                **scrape_tls,
                # Each exporter lists the ranks running on its node; an idle node lists
                # none, so it has no down targets.
                "http_sd_configs": [
                    {
                        "url": exporter_url(node, "/sd", tls),
                        "refresh_interval": _seconds(prom.sd_refresh_seconds),
                        **sd_tls,
                    }
                    for node in config.nodes
                ],
            },
        ],
    }


def render_prometheus_config(config: Config) -> str:
    return dump_yaml(
        prometheus_config(config),
        f"Rendered by `minicluster render` from the config of cluster {config.cluster.name!r}."
        "\nDo not edit: change config.yaml and render again.",
    )
