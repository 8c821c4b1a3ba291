"""prometheus.yml for the master, from the config.

Jobs (the contract every dashboard, rule and test relies on):
- `node`: every node's exporter, with target labels `node` and `role`;
- `trainer`: HTTP service discovery from every exporter's `/sd`, so ranks appear and
  disappear with the job (labels `job_id`, `rank`, `local_rank`, `node` come from `/sd`);
- `prometheus`, `alertmanager`: self-scrapes of the master's services.
The keys used are the subset that both Prometheus 2.42 (Debian, CI) and 3.x (Homebrew)
accept.
"""

from __future__ import annotations

from minicluster.core.config import Config, NodeSettings
from minicluster.render.yamltext import dump_yaml

RULES_GLOB = "rules/*.yml"


def _seconds(value: int) -> str:
    return f"{value}s"


def _host_port(address: str, port: int) -> str:
    # An IPv6 literal needs brackets in host:port.
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _node_labels(node: NodeSettings) -> dict[str, str]:
    return {"node": node.name, "role": node.role}


def exporter_url(node: NodeSettings, path: str = "") -> str:
    return f"http://{_host_port(node.address, node.exporter_port)}{path}"


def prometheus_config(config: Config) -> dict:
    prom = config.prometheus
    master = config.master
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
                "static_configs": [
                    {
                        "targets": [_host_port(master.address, prom.port)],
                        "labels": _node_labels(master),
                    }
                ],
            },
            {
                "job_name": "alertmanager",
                "static_configs": [
                    {
                        "targets": [_host_port(master.address, config.alertmanager.port)],
                        "labels": _node_labels(master),
                    }
                ],
            },
            {
                "job_name": "node",
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
                # Each exporter lists the ranks running on its node; an idle node lists
                # none, so it has no down targets.
                "http_sd_configs": [
                    {
                        "url": exporter_url(node, "/sd"),
                        "refresh_interval": _seconds(prom.sd_refresh_seconds),
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
