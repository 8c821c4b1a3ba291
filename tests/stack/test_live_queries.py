"""Against the live stack: every recording rule and dashboard query returns data, every
alert expression evaluates, and every docs/promql.md recipe answers.

A query is excused from returning data only when it needs a metric that an exporter on
Linux cannot publish (macOS memory pressure), and then the test
checks that the live exporters really do not publish it, so the excuse cannot outlive its
reason. Those queries are covered by promtool tests on macOS series instead.
"""

from __future__ import annotations

import re

import pytest
import requests

from minicluster.render import rules
from minicluster.render.dashboards import dashboards
from tests.stack.helpers import PROMQL_COOKBOOK

# Query text that marks a query as macOS-only -> the metrics whose absence on this Linux
# host excuses it from returning data.
MACOS_ONLY = {
    "minicluster_memory_pressure_level": ("minicluster_memory_pressure_level",),
}
RATE_INTERVAL = "1m"

pytestmark = pytest.mark.e2e


def _exporter_metric_names(live) -> set[str]:
    names = set()
    for url in live.exporter_urls.values():
        for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
            if line and not line.startswith("#"):
                names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def _excused(live, expr: str) -> bool:
    for marker, metrics in MACOS_ONLY.items():
        if marker in expr:
            published = _exporter_metric_names(live) & set(metrics)
            assert not published, f"{marker} is excused but {published} is published: drop it"
            return True
    return False


def _check_returns_data(live, expr: str, failures: list[str], timeout: float = 20) -> None:
    live.query(expr)  # evaluates without error, whatever else
    if _excused(live, expr):
        return
    try:
        live.wait_for_series(expr, timeout=timeout)
    except pytest.fail.Exception:
        failures.append(expr)


def _substitute(expr: str, live) -> str:
    values = {"job_id": live.job_id, "__rate_interval": RATE_INTERVAL}
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m[1], ".*"), expr)


def test_every_recording_rule_returns_series(live):
    failures: list[str] = []
    recorded = [r["record"] for r in rules.all_rules(live.config) if "record" in r]
    assert len(recorded) == 24
    for name in recorded:
        _check_returns_data(live, name, failures)
    assert failures == []


def test_recorded_values_are_plausible(live):
    job = f'job_id="{live.job_id}"'
    # 2 ranks, one per node, both discovered through their node's /sd.
    steps = live.query(f"job_rank:trainer_steps:rate{{{job}}}")
    assert sorted((s["metric"]["rank"], s["metric"]["node"]) for s in steps) == [
        ("0", "mini-red"),
        ("1", "mini-yellow"),
    ]
    # --step-sleep 0.05 caps a rank at 20 steps/s.
    assert all(0 < float(s["value"][1]) <= 20 for s in steps)
    # Every rank all-reduces its gradient bytes (from its `start` log line) each step. The
    # totals are exact to within the one step that may be in flight at the scrape; the
    # one-minute rate of a young job, to within a few steps.
    grad_bytes = live.grad_bytes()
    for s in live.query(f"trainer_allreduce_bytes_total{{{job}}} / trainer_steps_total"):
        assert float(s["value"][1]) == pytest.approx(grad_bytes, rel=0.02)
    for s in live.query(f"job_rank:trainer_allreduce_bytes_per_step:ratio{{{job}}}"):
        assert float(s["value"][1]) == pytest.approx(grad_bytes, rel=0.15)
    fractions = live.query(f"job_rank:trainer_comm_fraction:ratio{{{job}}}")
    assert all(0 <= float(s["value"][1]) <= 1 for s in fractions)
    (eta,) = live.query(f"job:trainer_eta:seconds{{{job}}}")
    assert float(eta["value"][1]) > 0
    available = live.query("node:memory_available:ratio")
    assert {s["metric"]["node"] for s in available} == {"mini-red", "mini-yellow"}
    assert all(0 < float(s["value"][1]) < 1 for s in available)
    devices = {s["metric"]["device"] for s in live.query("node_device:network_receive_bytes:rate")}
    assert devices and not devices & {"lo", "lo0"}


def test_every_alert_expression_evaluates(live):
    alerts = [r for r in rules.all_rules(live.config) if "alert" in r]
    assert len(alerts) == 21
    for rule in alerts:
        live.query(rule["expr"])
    # The always-firing one reached the firing state on the live Prometheus.
    assert live.firing("Watchdog")


@pytest.mark.parametrize("name", ["cluster-overview.json", "training-job.json", "network.json"])
def test_every_dashboard_query_returns_series(live, name):
    dashboard = dashboards(live.config)[name]
    failures: list[str] = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            _check_returns_data(live, _substitute(target["expr"], live), failures)
    for annotation in dashboard.get("annotations", {}).get("list", []):
        live.query(_substitute(annotation["expr"], live))
    assert failures == []


@pytest.mark.parametrize("name", ["cluster-overview.json", "training-job.json", "network.json"])
def test_every_dashboard_variable_has_values(live, name):
    dashboard = dashboards(live.config)[name]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
        assert match, variable["query"]
        selector, label = _substitute(match[1], live), match[2]
        series = requests.get(
            f"{live.prometheus}/api/v1/series", params={"match[]": selector}, timeout=10
        ).json()["data"]
        values = {s[label] for s in series if label in s}
        assert values, f"{name}: ${variable['name']} would have no values"
        if variable["name"] == "job_id":
            assert live.job_id in values
        if variable["name"] == "node":
            assert values == {"mini-red", "mini-yellow"}


def _cookbook_queries() -> list[str]:
    return re.findall(r"```promql\n(.*?)```", PROMQL_COOKBOOK.read_text(), flags=re.S)


def test_cookbook_has_the_questions_users_ask():
    text = PROMQL_COOKBOOK.read_text().lower()
    for question in ("throughput", "step time", "per step", "eta", "slow"):
        assert question in text
    assert len(_cookbook_queries()) >= 8


@pytest.mark.parametrize("index", range(len(_cookbook_queries())))
def test_cookbook_query_answers_on_the_live_stack(live, index):
    expr = _cookbook_queries()[index].strip()
    failures: list[str] = []
    _check_returns_data(live, expr, failures)
    assert failures == []
