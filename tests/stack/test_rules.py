"""The committed rules: valid for promtool, unit-tested by promtool, and held to the
conventions (names, severities, `for:` in minutes, runbooks) that users rely on."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from minicluster.render import rules
from tests.stack.helpers import (
    PROMTOOL_TESTS_DIR,
    RULES_DIR,
    RUNBOOKS,
    anchors,
    local_config,
    repo_config,
    rule_documents,
)
from tests.support import require_tool

# The alerts users see, by name.
EXPECTED_ALERTS = {
    "Watchdog",
    "PrometheusTargetDown",
    "NodeExporterDown",
    "NodeCPUSaturated",
    "NodeMemoryPressure",
    "NodeMemoryLow",
    "NodeFilesystemAlmostFull",
    "NodeFilesystemFillingUp",
    "NodeSwapping",
    "NodeNetworkErrors",
    "NodeNetworkSaturated",
    "NodePeerUnreachable",
    "NodePeerSlow",
    "NodeClockSkew",
    "TrainerStalled",
    "TrainerRankDown",
    "TrainerStraggler",
    "TrainerCommunicationBound",
    "TrainerLossNotFinite",
    "TrainerCheckpointOverdue",
    "TrainerRankRestarted",
}


def _promtool() -> str:
    return require_tool("promtool", "apt-get install prometheus (Homebrew: prometheus)")


def _all_rules() -> list[dict]:
    return [
        rule
        for doc in rule_documents().values()
        for group in doc["groups"]
        for rule in group["rules"]
    ]


def _promtool_tests() -> list[dict]:
    return [
        test
        for path in sorted(PROMTOOL_TESTS_DIR.glob("*.yml"))
        for test in yaml.safe_load(path.read_text())["tests"]
    ]


def test_promtool_check_rules():
    files = sorted(str(p) for p in RULES_DIR.glob("*.yml"))
    assert len(files) == 3
    result = subprocess.run([_promtool(), "check", "rules", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass():
    files = sorted(str(p) for p in PROMTOOL_TESTS_DIR.glob("*.yml"))
    assert len(files) == 3
    result = subprocess.run([_promtool(), "test", "rules", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 3


def test_the_alerts_are_exactly_the_documented_ones():
    assert {rule["alert"] for rule in _all_rules() if "alert" in rule} == EXPECTED_ALERTS


def test_every_alert_has_a_firing_and_a_quiet_case():
    fires, quiet = set(), set()
    for test in _promtool_tests():
        for case in test.get("alert_rule_test", []):
            (fires if case["exp_alerts"] else quiet).add(case["alertname"])
    assert fires == EXPECTED_ALERTS
    assert quiet == EXPECTED_ALERTS - {"Watchdog"}  # Watchdog is never quiet


def test_every_firing_case_asserts_labels_and_all_annotations():
    for test in _promtool_tests():
        for case in test.get("alert_rule_test", []):
            for expected in case["exp_alerts"]:
                assert "severity" in expected["exp_labels"], test["name"]
                assert set(expected["exp_annotations"]) == {
                    "summary",
                    "description",
                    "runbook_url",
                }, test["name"]


def test_every_recording_rule_has_an_expression_test():
    tested = " ".join(
        case["expr"] for test in _promtool_tests() for case in test.get("promql_expr_test", [])
    )
    recorded = [rule["record"] for rule in _all_rules() if "record" in rule]
    assert len(recorded) == 24
    untested = [name for name in recorded if not re.search(re.escape(name) + r"\b", tested)]
    assert untested == []


def test_missing_and_stale_series_are_covered():
    inputs = [
        series["values"] for test in _promtool_tests() for series in test.get("input_series", [])
    ]
    assert sum("stale" in values for values in inputs) >= 5
    names = {test["name"] for test in _promtool_tests()}
    assert "NodeMemoryPressure stays quiet where the metric is missing (Linux)" in names


def test_alert_conventions():
    for rule in _all_rules():
        if "alert" not in rule:
            assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]
            continue
        name = rule["alert"]
        assert re.fullmatch(r"(Node|Prometheus|Trainer)[A-Z][A-Za-z]+|Watchdog", name)
        assert rule["labels"]["severity"] in {"critical", "warning", "none"}
        assert re.fullmatch(r"\d+m", rule["for"]), f"{name}: for {rule['for']}"
        annotations = rule["annotations"]
        assert "{{" not in annotations["summary"], f"{name}: the summary is static"
        assert "{{" in annotations["description"], f"{name}: the description is templated"
        assert annotations["runbook_url"] == f"docs/runbooks.md#{name.lower()}"


def test_every_alert_has_a_runbook_section():
    text = RUNBOOKS.read_text()
    sections = anchors(text)
    for name in EXPECTED_ALERTS:
        assert name.lower() in sections, f"docs/runbooks.md has no section for {name}"
    for name in EXPECTED_ALERTS:
        body = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("Meaning", "First checks", "Fixes"):
            assert f"**{part}" in body, f"{name}: runbook section lacks {part}"


def test_thresholds_come_from_the_config(tmp_path):
    data = repo_config(tmp_path).model_dump(mode="json")
    data["alerts"].update(cpu_saturated_ratio=0.75, trainer_stalled_minutes=0.25)
    from minicluster.core.config import parse_config

    by_name = {r.get("alert"): r for r in rules.all_rules(parse_config(data, "<test>"))}
    assert by_name["NodeCPUSaturated"]["expr"] == "node:cpu_utilisation:ratio > 0.75"
    assert "(threshold 75%)" in by_name["NodeCPUSaturated"]["annotations"]["description"]
    # A fraction of a minute, for tests: 15 s of no progress, rendered in seconds.
    assert by_name["TrainerRankDown"]["for"] == "15s"
    assert by_name["TrainerStalled"]["for"] == "15s"
    assert "> 15\n" in by_name["TrainerStalled"]["expr"]


def test_for_durations_and_their_prose_come_from_the_config(tmp_path):
    from minicluster.core.config import parse_config

    data = repo_config(tmp_path).model_dump(mode="json")
    data["alerts"].update(
        cpu_saturated_for_minutes=30,
        peer_unreachable_for_minutes=1,
        comm_bound_for_minutes=0.5,
        target_down_for_minutes=7,
    )
    by_name = {r.get("alert"): r for r in rules.all_rules(parse_config(data, "<test>"))}
    cpu = by_name["NodeCPUSaturated"]
    assert cpu["for"] == "30m" and "busy for 30 minutes" in cpu["annotations"]["description"]
    peer = by_name["NodePeerUnreachable"]
    assert peer["for"] == "1m" and "exporter for 1 minute:" in peer["annotations"]["description"]
    assert by_name["TrainerCommunicationBound"]["for"] == "30s"
    target = by_name["PrometheusTargetDown"]
    assert target["for"] == "7m"
    assert "answered Prometheus for 7 minutes." in target["annotations"]["description"]


def test_defaults_keep_the_durations_users_know():
    expected = {
        "NodeCPUSaturated": "15m",
        "NodeFilesystemFillingUp": "60m",
        "NodePeerUnreachable": "2m",
        "TrainerStraggler": "10m",
        "TrainerCommunicationBound": "10m",
        "PrometheusTargetDown": "5m",
    }
    assert {r["alert"]: r["for"] for r in _all_rules() if r.get("alert") in expected} == expected


def test_runbook_links_follow_the_published_base_url(tmp_path):
    from minicluster.core.config import parse_config

    data = repo_config(tmp_path).model_dump(mode="json")
    base = "https://example.org/minicluster/blob/main/docs/runbooks.md"
    data["alerts"]["runbook_base_url"] = base
    for rule in rules.all_rules(parse_config(data, "<test>")):
        if "alert" in rule:
            assert rule["annotations"]["runbook_url"] == f"{base}#{rule['alert'].lower()}"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("docs/runbooks.md", "must be an http:// or https:// URL"),
        ("ftp://example.org/runbooks.md", "must be an http:// or https:// URL"),
        ("https://example.org/run books.md", "must have no whitespace"),
        ("https://example.org/runbooks.md\nX-Injected: 1", "must have no whitespace"),
        ("https://example.org/runbooks.md#top", "no #anchor"),
    ],
)
def test_a_bad_runbook_base_url_is_refused_in_one_line(tmp_path, value, reason):
    from minicluster.core.config import ConfigError, parse_config

    data = repo_config(tmp_path).model_dump(mode="json")
    data["alerts"]["runbook_base_url"] = value
    with pytest.raises(ConfigError) as raised:
        parse_config(data, "config.yaml")
    message = str(raised.value)
    assert message.startswith("config.yaml: alerts.runbook_base_url: ")
    assert reason in message and "\n" not in message


@pytest.mark.parametrize(
    ("scrape", "window"), [(1, "1m"), (15, "1m"), (30, "2m"), (45, "3m"), (100, "400s")]
)
def test_rate_window_covers_four_scrapes(tmp_path, scrape, window):
    config = local_config(
        tmp_path,
        prometheus={"scrape_interval_seconds": scrape, "scrape_timeout_seconds": 1},
    )
    assert rules.rate_window(config) == window


def test_no_checkpoint_alert_when_checkpoints_are_off(tmp_path):
    config = local_config(tmp_path, trainer={"checkpoint_interval": 0})
    names = {rule.get("alert") for rule in rules.all_rules(config)}
    assert "TrainerCheckpointOverdue" not in names
    assert "TrainerStalled" in names


def test_the_runbook_table_names_real_keys_and_their_defaults():
    from minicluster.core.config import AlertThresholds

    defaults = AlertThresholds()
    row = re.compile(r"^\| (\w+) \|\s*(?:`(\w+)`)?\s*\| `(\w+)` \((\d+)\) \|$", re.M)
    rows = row.findall(RUNBOOKS.read_text())
    assert len(rows) >= 15
    for alertname, threshold, for_key, default in rows:
        assert alertname in EXPECTED_ALERTS
        assert getattr(defaults, for_key) == float(default), for_key
        if threshold:
            assert threshold in AlertThresholds.model_fields, threshold
