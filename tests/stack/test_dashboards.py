"""The dashboards' structure: what Grafana needs to show them and users need to trust them."""

from __future__ import annotations

import re

import pytest
import yaml

from minicluster.render import grafana
from minicluster.render.dashboards import MODULES, dashboards
from tests.stack.helpers import repo_config

# Grafana's own variables, always defined.
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range", "__all"}
MODERN_PANEL_TYPES = {"timeseries", "stat", "table", "row", "gauge", "bargauge"}
_VARIABLE = re.compile(r"\$\{?(\w+)")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, dict]:
    return dashboards(repo_config(tmp_path_factory.mktemp("dashboards")))


def _targets(dashboard: dict) -> list[dict]:
    return [t for p in dashboard["panels"] for t in p.get("targets", [])]


def _defined_variables(dashboard: dict) -> set[str]:
    return {v["name"] for v in dashboard["templating"]["list"]}


def test_uids_are_fixed_and_distinct(rendered):
    assert {name: d["uid"] for name, d in rendered.items()} == {
        name: module.UID for name, module in MODULES.items()
    }
    assert len({d["uid"] for d in rendered.values()}) == 3
    for d in rendered.values():
        assert d["schemaVersion"] == 42
        assert d["editable"] is False


def test_panel_ids_are_unique_and_the_grid_is_24_columns(rendered):
    for name, d in rendered.items():
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), name
        cells: set[tuple[int, int]] = set()
        for panel in d["panels"]:
            pos = panel["gridPos"]
            assert pos["w"] > 0 and pos["h"] > 0
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, (name, panel["title"])
            covered = {
                (x, y)
                for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])
            }
            assert not covered & cells, f"{name}: {panel['title']} overlaps another panel"
            cells |= covered


def test_modern_panel_types_only(rendered):
    for d in rendered.values():
        assert {p["type"] for p in d["panels"]} <= MODERN_PANEL_TYPES


def test_every_query_uses_the_datasource_variable_preset_to_the_provisioned_uid(rendered, tmp_path):
    provisioned = grafana.datasource_provisioning(repo_config(tmp_path))["datasources"][0]
    assert provisioned["uid"] == grafana.DATASOURCE_UID
    ref = {"type": "prometheus", "uid": "${datasource}"}
    for name, d in rendered.items():
        (source_variable,) = [v for v in d["templating"]["list"] if v["type"] == "datasource"]
        assert source_variable["name"] == "datasource"
        assert source_variable["query"] == "prometheus"
        assert source_variable["current"]["value"] == provisioned["uid"]
        for panel in d["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"] == ref, (name, panel["title"])
        for target in _targets(d):
            assert target["datasource"] == ref
        for variable in d["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["datasource"] == ref
        for annotation in d.get("annotations", {}).get("list", []):
            assert annotation["datasource"] == ref
    # No datasource is named anywhere: only the uid variable.
    assert provisioned["name"] not in yaml.safe_dump(rendered)


def test_every_variable_used_is_defined(rendered):
    for name, d in rendered.items():
        defined = _defined_variables(d) | BUILTIN_VARIABLES
        texts = [t["expr"] for t in _targets(d)]
        texts += [v["query"]["query"] for v in d["templating"]["list"] if v["type"] == "query"]
        texts += [a["expr"] for a in d.get("annotations", {}).get("list", [])]
        for text in texts:
            for used in _VARIABLE.findall(text):
                assert used in defined, f"{name}: ${used} in {text!r} is not defined"


def test_query_variables_are_multi_select_with_a_regex_all(rendered):
    for d in rendered.values():
        for variable in d["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["multi"] and variable["includeAll"]
                assert variable["allValue"] == ".*"
                assert variable["query"]["query"].startswith("label_values(")


def test_training_job_dashboard_has_every_panel_a_job_needs(rendered):
    d = rendered["training-job.json"]
    assert [v["name"] for v in d["templating"]["list"]] == ["datasource", "job_id", "node", "rank"]
    assert [a["name"] for a in d["annotations"]["list"]] == ["Job start", "Job end"]
    titles = {p["title"] for p in d["panels"]}
    assert {
        "Progress",
        "Time to finish",
        "Steps per second",
        "Samples per second",
        "Loss",
        "Step time by phase",
        "All-reduce bytes per second",
        "All-reduce bucket latency",
        "All-reduce bus bandwidth",
        "Communication fraction",
        "Ranks",
        "Restarts",
        "Last checkpoint step",
    } <= titles
    (ranks,) = [p for p in d["panels"] if p["title"] == "Ranks"]
    assert ranks["type"] == "table"
    assert "job_rank:trainer_straggler:ratio" in ranks["targets"][0]["expr"]


def test_cluster_overview_and_network_have_every_node_and_link_panel(rendered):
    overview = {p["title"] for p in rendered["cluster-overview.json"]["panels"]}
    assert {
        "CPU utilisation",
        "Available memory",
        "Memory pressure",
        "Load per core",
        "Filesystem space available",
        "NIC traffic and link speed",
        "Peer round trip",
        "Collectors",
        "Firing alerts",
    } <= overview
    network = rendered["network.json"]
    exprs = " ".join(t["expr"] for t in _targets(network))
    assert "job_rank:trainer_allreduce_bytes:rate" in exprs
    assert "node_network_receive_errs_total" in exprs
    assert "node_network_receive_drop_total" in exprs


def test_thresholds_drawn_on_panels_come_from_the_config(rendered):
    (cpu,) = [
        p for p in rendered["cluster-overview.json"]["panels"] if p["title"] == "CPU utilisation"
    ]
    steps = cpu["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1] == {"value": 0.9, "color": "red"}
