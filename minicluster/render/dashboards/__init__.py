"""Grafana dashboards as code, one module per dashboard, built with grafana-foundation-sdk.

`dashboards(config)` maps each JSON file name to the dashboard's JSON data; the rendered
files and the committed copies in grafana/dashboards/ both come from here.
"""

from __future__ import annotations

import json
import warnings

from minicluster.core.config import Config

# grafana-foundation-sdk 0.0.21 warns on import that its v1 dashboard model is superseded
# by the v2 schema (Grafana 12 only); v1 with schemaVersion 42 is what we target on purpose.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Prefer using dashboardv2", DeprecationWarning)
    from minicluster.render.dashboards import cluster_overview, network, training_job
    from minicluster.render.dashboards.common import runbook_link, to_json

MODULES = {
    "cluster-overview.json": cluster_overview,
    "training-job.json": training_job,
    "network.json": network,
}


def dashboards(config: Config) -> dict[str, dict]:
    """File name -> dashboard JSON data; with `alerts.runbook_base_url` set, each dashboard
    links to the runbooks its alerts point at."""
    built = {name: module.build(config) for name, module in MODULES.items()}
    base = config.alerts.runbook_base_url
    if base:
        built = {name: dashboard.link(runbook_link(base)) for name, dashboard in built.items()}
    return {name: to_json(dashboard) for name, dashboard in built.items()}


def dumps(dashboard: dict) -> str:
    """Stable text for a dashboard: sorted keys, so regenerating gives identical bytes."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
