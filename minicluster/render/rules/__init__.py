"""Prometheus recording and alerting rules, with thresholds and `for:` durations from the
config's `alerts`, one module per area: node, trainer, stack (the monitoring services).

Recording rules are named `level:metric:operations` (the monitoring-mixin convention) and
are where macOS and Linux are made to look alike; dashboards and alerts build on them.
Alerts are CamelCase with a component prefix (Node, Prometheus, Trainer), a `severity`,
`for:` in minutes, a static summary, a description templated from the same numbers as the
expression, and a runbook link into docs/runbooks.md (`alerts.runbook_base_url` makes it a
web link). Every rule here is covered by `promtool test rules` in prometheus/tests/ and
evaluated against a live stack in tests/stack/.

Only PromQL that both Prometheus 2.42 and 3.x evaluate the same way is used (3.x made
range selectors left-open, so windows are kept at four or more scrape intervals).
"""

from __future__ import annotations

from minicluster.core.config import Config
from minicluster.render.rules import node, stack, trainer
from minicluster.render.rules.common import rate_window, runbook_url
from minicluster.render.yamltext import dump_yaml

__all__ = ["all_rules", "rate_window", "render_rule_files", "rule_files", "runbook_url"]


def rule_files(config: Config) -> dict[str, dict]:
    """File name -> rule file document, for DIR/prometheus/rules/."""
    return {
        "node.yml": {
            "groups": [
                {"name": "node.rules", "rules": node.recording_rules(config)},
                {"name": "node.alerts", "rules": node.alerts(config)},
            ]
        },
        "trainer.yml": {
            "groups": [
                {"name": "trainer.rules", "rules": trainer.recording_rules(config)},
                {"name": "trainer.alerts", "rules": trainer.alerts(config)},
            ]
        },
        "stack.yml": {"groups": [{"name": "stack.alerts", "rules": stack.alerts(config)}]},
    }


def render_rule_files(config: Config) -> dict[str, str]:
    header = (
        f"Rendered by `minicluster render` from the config of cluster {config.cluster.name!r}."
        "\nDo not edit: change config.yaml (alerts:) or minicluster/render/rules/."
    )
    return {name: dump_yaml(doc, header) for name, doc in rule_files(config).items()}


def all_rules(config: Config) -> list[dict]:
    return [
        rule
        for doc in rule_files(config).values()
        for group in doc["groups"]
        for rule in group["rules"]
    ]
