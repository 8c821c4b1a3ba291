"""What every rule file shares: number and duration text, and the shape of a recording rule
and of an alert (CamelCase name, `severity`, `for:` in minutes, a static summary, a templated
description and a runbook link)."""

from __future__ import annotations

from minicluster.core import metrics
from minicluster.core.config import Config

# The runbooks in the repository; `alerts.runbook_base_url` says where they are published.
RUNBOOK_PATH = "docs/runbooks.md"


def number(value: float) -> str:
    """A threshold as PromQL text: 0.9 -> '0.9', 1048576.0 -> '1048576'."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def duration(minutes: float) -> str:
    """A `for:` or range duration: whole minutes as 'Nm', anything else in seconds."""
    if float(minutes).is_integer():
        return f"{int(minutes)}m"
    return f"{round(minutes * 60)}s"


def minutes_text(minutes: float) -> str:
    """A duration for prose: '15 minutes', '1 minute', or '15 seconds' below whole minutes."""
    if float(minutes).is_integer():
        return f"{int(minutes)} minute{'' if minutes == 1 else 's'}"
    return f"{round(minutes * 60)} seconds"


def percent(ratio: float) -> str:
    """0.9 -> '90' (rounded: 0.9 * 100 is 90.00000000000001 in floating point)."""
    return number(round(ratio * 100, 6))


def rate_window(config: Config) -> str:
    """The range of every rate() in the rules (see core.metrics.rate_window)."""
    return metrics.rate_window(config.prometheus.scrape_interval_seconds)


def runbook_url(config: Config, alertname: str) -> str:
    return f"{config.alerts.runbook_base_url or RUNBOOK_PATH}#{alertname.lower()}"


def _expr(text: str) -> str:
    """One-line expressions stay inline; longer ones become YAML blocks ending in a newline."""
    text = text.strip()
    return text + "\n" if "\n" in text else text


def record(name: str, expr: str) -> dict:
    return {"record": name, "expr": _expr(expr)}


def alert(
    config: Config,
    name: str,
    expr: str,
    *,
    for_minutes: float,
    severity: str,
    summary: str,
    description: str,
) -> dict:
    return {
        "alert": name,
        "expr": _expr(expr),
        "for": duration(for_minutes),
        "labels": {"severity": severity},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": runbook_url(config, name),
        },
    }
