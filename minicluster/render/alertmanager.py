"""alertmanager.yml for the master, from the config.

Routes by severity: critical and warning alerts each go to their own receiver, the
always-firing Watchdog to its own (a heartbeat the webhook can watch for). Every receiver
posts to `alertmanager.webhook_url`; with no URL they have no integrations and alerts are
only shown in Alertmanager's UI. A firing critical alert mutes the warnings about the same
node and job. Only keys that Alertmanager 0.25 (Debian) and current Homebrew releases both
accept are used (`matchers`, not the deprecated `match`).
"""

from __future__ import annotations

from minicluster.core.config import Config
from minicluster.render.yamltext import dump_yaml

RECEIVERS = ("default", "critical", "warning", "watchdog")
# Alerts of one alertname on one node and one job go out together.
GROUP_BY = ["alertname", "cluster", "node", "job_id"]
# A critical alert mutes the warnings with the same values of these (an absent label
# counts as equal), e.g. NodeExporterDown on a worker mutes that node's warnings.
INHIBIT_EQUAL = ["cluster", "node", "job_id"]


def _receiver(name: str, webhook_url: str | None) -> dict:
    receiver: dict = {"name": name}
    if webhook_url:
        receiver["webhook_configs"] = [{"url": webhook_url, "send_resolved": True}]
    return receiver


def alertmanager_config(config: Config) -> dict:
    am = config.alertmanager
    return {
        "route": {
            "receiver": "default",
            "group_by": GROUP_BY,
            "group_wait": f"{am.group_wait_seconds}s",
            # Wait this long before telling about new alerts in a group already notified.
            "group_interval": "1m",
            "repeat_interval": f"{am.repeat_interval_hours}h",
            "routes": [
                {"receiver": "watchdog", "matchers": ['alertname="Watchdog"']},
                {"receiver": "critical", "matchers": ['severity="critical"']},
                {"receiver": "warning", "matchers": ['severity="warning"']},
            ],
        },
        "inhibit_rules": [
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": INHIBIT_EQUAL,
            }
        ],
        "receivers": [_receiver(name, am.webhook_url) for name in RECEIVERS],
    }


def render_alertmanager_config(config: Config) -> str:
    return dump_yaml(
        alertmanager_config(config),
        f"Rendered by `minicluster render` from the config of cluster {config.cluster.name!r}."
        "\nDo not edit: change config.yaml (alertmanager:) and render again.",
    )
