"""A cluster grows and shrinks by editing config.yaml: nodes that join are installed and
scraped, running workers are left alone, a node that leaves stops being scraped and deploy
says how to clean it; `make undeploy NODE=...` removes that node only."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.scale.conftest import ALERTS, EXPORTER, NAMES, Grown, Services, installed_config
from tests.support import require_tool, wait_until

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_YML = "/opt/minicluster/stack/prometheus/prometheus.yml"


def changed_block(output: str, name: str) -> list[str]:
    """The `name: changed:` lines of a deploy's output ([] if it lists no change there)."""
    lines = output.split("verified:")[0].splitlines()
    if f"{name}: changed:" not in lines:
        return []
    start = lines.index(f"{name}: changed:") + 1
    block = []
    for line in lines[start:]:
        if not line.startswith("  - "):
            break
        block.append(line[4:])
    return block


def scraped_nodes(grown: Grown) -> dict[str, set[str]]:
    """Active targets of the node and trainer-discovery jobs, by the node they scrape."""
    targets = grown.prometheus("/api/v1/targets", state="active")["activeTargets"]
    return {
        "node": {t["labels"]["node"] for t in targets if t["labels"]["job"] == "node"},
    }


def test_two_nodes_join_a_running_pair_and_only_they_and_the_master_change(grown: Grown):
    output = grown.grow_deploy.output
    # The new nodes get everything: venv, wheel, config, the exporter started.
    for name in ("mini-three", "mini-four"):
        block = changed_block(output, name)
        assert any(line.startswith("venv: install") for line in block), output
        assert "config.yaml" in block and "exporter: start (bootstrap)" in block, block
        assert grown.cluster.hosts[name].service_pid(EXPORTER)
    # The running worker: nothing changed, said so, its exporter kept its PID and config.
    assert changed_block(output, "mini-two") == []
    assert "No changes: mini-two already up to date" in output
    assert installed_config(grown.cluster, "mini-two") == grown.worker_config_before
    installed = yaml.safe_load(grown.worker_config_before)
    assert [node["name"] for node in installed["nodes"]] == ["mini-one", "mini-two"]
    exporter_two = f"{EXPORTER}@mini-two"
    assert grown.after.pids[exporter_two] == grown.before.pids[exporter_two] is not None
    assert grown.after.runs[exporter_two] == grown.before.runs[exporter_two] == 1
    # The master: Prometheus reloaded its targets in place (same PID), Alertmanager untouched.
    master = changed_block(output, "mini-one")
    assert "prometheus: reload (SIGHUP)" in master, master
    assert not any(line.startswith(("venv:", "alertmanager:")) for line in master), master
    for service in ("prometheus", "alertmanager"):
        key = f"io.minicluster.{service}@mini-one"
        assert grown.after.pids[key] == grown.before.pids[key] is not None
        assert grown.after.runs[key] == grown.before.runs[key]
    assert "verified: 4 exporters answer /metrics from mini-one" in output
    # The master's Prometheus scrapes all four exporters (the fixture waited for up == 1).
    live = grown.cluster.master.path(PROMETHEUS_YML).read_text()
    for name in NAMES:
        assert f"node: {name}" in live
    assert grown.nodes_up() == dict.fromkeys(NAMES, "1")
    print(f"timings: {grown.timings}")


def test_a_node_that_leaves_is_no_longer_scraped_and_undeploy_removes_it_alone(
    grown: Grown, tmp_path: Path
):
    cluster = grown.cluster
    four_nodes = cluster.write_config(tmp_path / "four.yaml", alerts=ALERTS)  # still lists it
    before = Services.of(cluster, list(NAMES))
    cluster.write_config(nodes=list(NAMES[:3]), alerts=ALERTS)  # mini-four leaves
    grown.stale = True
    try:
        shrink = grown.deploy()
        assert shrink.returncode == 0, shrink.output
        assert (
            "mini-one: note: mini-four left config.yaml: Prometheus no longer scrapes it, but its "
            "exporter still runs there; remove it with `make undeploy NODE=mini-four "
            "CONFIG=<a config that still lists it>`"
        ) in shrink.output
        assert "No changes: mini-two, mini-three already up to date" in shrink.output
        wait_until(
            lambda: (
                scraped_nodes(grown)["node"] == set(NAMES[:3])
                and set(grown.nodes_up()) == set(NAMES[:3])
            ),
            "Prometheus to drop mini-four's exporter",
            timeout=60,
        )
        # The workers that stay and the one that left: not touched, same exporter PIDs.
        four = cluster.hosts["mini-four"]
        for name in NAMES[1:]:
            assert cluster.hosts[name].service_pid(EXPORTER) == before.pids[f"{EXPORTER}@{name}"]
        running = Services.of(cluster, list(NAMES[:3]))

        make = require_tool("make", "apt-get install make")
        result = subprocess.run(
            [make, "-C", str(REPO), "-o", ".venv/.installed", "undeploy",
             f"CONFIG={four_nodes}", "NODE=mini-four"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "mini-four: services booted out, files removed (data and logs kept)" in output
        for name in NAMES[:3]:
            assert f"{name}:" not in output  # never connected to
        assert four.launchd_job(EXPORTER) is None
        exporter_four = before.pids[f"{EXPORTER}@mini-four"]
        wait_until(lambda: not four.alive(exporter_four), "mini-four's exporter to exit", 30)
        assert not four.path("/opt/minicluster/venv").exists()
        # Everything else runs on, with the same PIDs.
        assert Services.of(cluster, list(NAMES[:3])).pids == running.pids
    finally:
        cluster.write_config(alerts=ALERTS)
