"""`minicluster deploy` for real, over ssh, onto the two simulated Minis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from minicluster.deploy.stack import render_stack
from minicluster.render.launchd import LABEL_PREFIX, exporter_label
from tests.deploy.conftest import Deployed, Run
from tests.hosts.clients import alertmanager_url, exporter_get, prometheus_url, service_get
from tests.support import wait_until

pytestmark = pytest.mark.e2e

EXPORTER = exporter_label()
PROMETHEUS = LABEL_PREFIX + "prometheus"
ALERTMANAGER = LABEL_PREFIX + "alertmanager"


def get(deployed: Deployed, path: str, **params) -> requests.Response:
    """Prometheus' API on mini-red, with the web user's password when TLS is on."""
    config = deployed.cluster.config
    return service_get(config, prometheus_url(config, path), params=params)


def query(deployed: Deployed, promql: str) -> list[dict]:
    response = get(deployed, "/api/v1/query", query=promql)
    response.raise_for_status()
    return response.json()["data"]["result"]


def own_metric(deployed: Deployed, name: str) -> float:
    """A sample from Prometheus' own /metrics page."""
    for line in get(deployed, "/metrics").text.splitlines():
        metric, _, value = line.partition(" ")
        if metric == name:
            return float(value)
    raise AssertionError(f"{name} not in Prometheus' /metrics")


def loaded_rule_groups(deployed: Deployed) -> set[str]:
    response = get(deployed, "/api/v1/rules")
    return {group["name"] for group in response.json()["data"]["groups"]}


def service_pids(deployed: Deployed) -> dict[str, int | None]:
    red, yellow = deployed.cluster.red, deployed.cluster.yellow
    return {
        "exporter@mini-red": red.service_pid(EXPORTER),
        "exporter@mini-yellow": yellow.service_pid(EXPORTER),
        "prometheus": red.service_pid(PROMETHEUS),
        "alertmanager": red.service_pid(ALERTMANAGER),
    }


def starts(deployed: Deployed) -> dict[str, int]:
    """How often the launchctl stand-in has started each service."""
    red, yellow = deployed.cluster.red, deployed.cluster.yellow
    jobs = {
        "exporter@mini-red": red.launchd_job(EXPORTER),
        "exporter@mini-yellow": yellow.launchd_job(EXPORTER),
        "prometheus": red.launchd_job(PROMETHEUS),
        "alertmanager": red.launchd_job(ALERTMANAGER),
    }
    return {name: job["runs"] for name, job in jobs.items()}


def changed_lines(run: Run) -> str:
    """The part of the output listing changes (before the verification lines)."""
    return run.output.split("verified:")[0]


def test_first_deploy_brings_up_both_minis(deployed: Deployed):
    cluster, config = deployed.cluster, deployed.cluster.config
    assert "verified: 2 exporters answer /metrics from mini-red" in deployed.first.output
    assert "not installed here; its files are rendered and checked" in deployed.first.output
    # The master's Prometheus and Alertmanager came from Homebrew (the hosts' brew stand-in),
    # the plists run them from Homebrew's bin; the worker's brew was never asked.
    assert "  - brew install prometheus alertmanager" in deployed.first.output
    formulae = cluster.red.brew("list", "--versions").stdout.splitlines()
    assert [line.split()[0] for line in formulae] == ["alertmanager", "prometheus"]
    assert cluster.red.launchd_job(PROMETHEUS)["plist"]["ProgramArguments"][0] == (
        "/opt/homebrew/bin/prometheus"
    )
    assert cluster.yellow.brew("list", "--versions").stdout == ""

    for node in config.nodes:
        text = exporter_get(config, node).text
        # The exporter answering on this address runs on that host (its own hostname).
        assert f'nodename="{node.name}"' in text
        assert 'node_scrape_collector_success{collector="cpu"} 1.0' in text

    def both_up():
        series = query(deployed, 'up{job="node"}')
        return {s["metric"]["node"]: s["value"][1] for s in series} == {
            "mini-red": "1",
            "mini-yellow": "1",
        }

    wait_until(both_up, "Prometheus on mini-red to see both exporters up", timeout=60)
    assert loaded_rule_groups(deployed) == render_stack(config).rule_groups()
    alertmanager = alertmanager_url(config, "/-/ready")
    assert service_get(config, alertmanager).status_code == 200
    assert own_metric(deployed, "prometheus_config_last_reload_successful") == 1

    for host in cluster.hosts.values():
        # Started as launchd would: the plist's environment and nothing else.
        job = host.launchd_job(EXPORTER)
        environ = host.run(["cat", f"/proc/{job['pid']}/environ"]).stdout
        started_with = dict(item.split("=", 1) for item in environ.split("\0") if item)
        assert started_with == job["plist"]["EnvironmentVariables"]
        assert "PYTHONPATH" not in started_with
        # The package comes from the installed wheel, torch is the local CPU build.
        probe = "import minicluster, torch; print(minicluster.__file__); print(torch.__version__)"
        where, torch_version = host.run(
            ["/opt/minicluster/venv/bin/python", "-c", probe]
        ).stdout.split()
        assert where.startswith("/opt/minicluster/venv/lib/")
        assert torch_version.endswith("+cpu")


def test_second_deploy_changes_nothing_and_restarts_nothing(deployed: Deployed):
    pids, runs = service_pids(deployed), starts(deployed)
    reloaded_at = own_metric(deployed, "prometheus_config_last_reload_success_timestamp_seconds")
    assert all(pids.values()), pids

    second = deployed.deploy()

    assert second.returncode == 0, second.output
    assert "No changes: mini-red, mini-yellow already up to date" in second.output
    assert "changed:" not in second.output
    assert service_pids(deployed) == pids
    assert starts(deployed) == runs
    assert own_metric(deployed, "prometheus_config_last_reload_success_timestamp_seconds") == (
        reloaded_at
    )


def test_new_scrape_interval_reloads_prometheus_only(deployed_config_changed: Deployed):
    deployed = deployed_config_changed
    cluster = deployed.cluster
    live_config = cluster.red.path("/opt/minicluster/stack/prometheus/prometheus.yml")
    assert "scrape_interval: 2s" in live_config.read_text()
    pids, runs = service_pids(deployed), starts(deployed)
    reloaded_at = own_metric(deployed, "prometheus_config_last_reload_success_timestamp_seconds")
    cluster.write_config(prometheus={"scrape_interval_seconds": 3})

    dry = deployed.deploy("--dry-run")

    assert dry.returncode == 0, dry.output
    assert "prometheus: reload (SIGHUP)" in dry.output
    assert "prometheus/prometheus.yml" in dry.output
    assert "exporter:" not in dry.output and "alertmanager:" not in dry.output
    assert "scrape_interval: 2s" in live_config.read_text()  # a dry run changes nothing

    run = deployed.deploy()

    assert run.returncode == 0, run.output
    changes = changed_lines(run)
    assert "prometheus: reload (SIGHUP)" in changes
    assert changes.count("  - config.yaml") == 2  # both nodes get the new config.yaml
    assert "exporter:" not in changes and "alertmanager:" not in changes
    assert service_pids(deployed) == pids  # reloaded in place, nothing restarted
    assert starts(deployed) == runs
    assert own_metric(deployed, "prometheus_config_last_reload_success_timestamp_seconds") > (
        reloaded_at
    )
    status = get(deployed, "/api/v1/status/config").json()
    assert yaml.safe_load(status["data"]["yaml"])["global"]["scrape_interval"] == "3s"


def test_rule_file_promtool_rejects_stops_the_deploy(deployed: Deployed):
    cluster = deployed.cluster
    groups, pids = loaded_rule_groups(deployed), service_pids(deployed)
    reloaded_at = own_metric(deployed, "prometheus_config_last_reload_success_timestamp_seconds")

    result = subprocess.run(
        [sys.executable, "-m", "tests.deploy.faulty_render", "--config",
         str(cluster.config_path), "--wheel", str(deployed.wheel)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "250"},
        cwd=Path(__file__).parents[2],  # the repository root, where `tests` is importable
    )  # fmt: skip
    output = result.stdout + result.stderr

    assert result.returncode == 1, output
    assert "mini-red: deploy failed:" in output
    assert "broken.yml" in output and "unclosed left parenthesis" in output  # promtool's words
    rules_dir = "/opt/minicluster/stack/prometheus/rules"
    assert not cluster.red.path(f"{rules_dir}/broken.yml").exists()  # never installed
    assert cluster.red.path("/opt/minicluster/staging/prometheus/rules/broken.yml").exists()
    assert loaded_rule_groups(deployed) == groups
    assert "broken" not in groups
    assert service_pids(deployed) == pids
    assert own_metric(deployed, "prometheus_config_last_reload_success_timestamp_seconds") == (
        reloaded_at
    )


def test_tls_files_land_in_a_private_folder_with_their_final_modes(deployed: Deployed):
    cluster = deployed.cluster
    # The folder is made 0700 before any key or password is uploaded into it.
    for node in ("mini-red", "mini-yellow"):
        ops = changed_lines(deployed.first).split(f"{node}: changed:")[1].split(": changed:")[0]
        ops = [line.strip().removeprefix("- ") for line in ops.splitlines()]
        first_file = min(ops.index(f"tls {name}") for name in ("ca.crt", "node.crt", "node.key"))
        assert ops.index("folder /opt/minicluster/tls (0700)") < first_file
    for host, private in [
        (cluster.red, {"node.key", "prometheus-client.key", "web-password", "web.yml"}),
        (cluster.yellow, {"node.key"}),
    ]:
        modes = host.run("cd /opt/minicluster/tls && stat -c '%n %a %U' * .").stdout.split("\n")
        found = dict(line.split(" ", 1) for line in modes if line)
        assert found.pop(".") == "700 root"
        assert {name for name, mode in found.items() if mode == "600 root"} == private
        assert all(mode == "644 root" for name, mode in found.items() if name not in private)
    pki = cluster.root / "pki" / "simulated"
    assert cluster.yellow.path("/opt/minicluster/tls/node.key").read_bytes() == (
        (pki / "nodes" / "mini-yellow.key").read_bytes()
    )


def test_a_reissued_node_certificate_restarts_that_nodes_exporter_only(deployed: Deployed):
    cluster = deployed.cluster
    pki = cluster.root / "pki" / "simulated" / "nodes"
    old_cert = (pki / "mini-yellow.crt").read_bytes()
    pids, runs = service_pids(deployed), starts(deployed)
    for suffix in (".crt", ".key"):  # how docs/security.md says to rotate one node's files
        (pki / f"mini-yellow{suffix}").unlink()

    run = deployed.deploy()

    assert run.returncode == 0, run.output
    assert (pki / "mini-yellow.crt").read_bytes() != old_cert
    installed = cluster.yellow.path("/opt/minicluster/tls/node.crt").read_bytes()
    assert installed == (pki / "mini-yellow.crt").read_bytes()
    changes = changed_lines(run)
    assert "No changes: mini-red already up to date" in run.output
    assert "exporter: restart (kickstart -k)" in changes
    after = service_pids(deployed)
    assert after["exporter@mini-yellow"] != pids["exporter@mini-yellow"]
    assert {k: v for k, v in after.items() if k != "exporter@mini-yellow"} == {
        k: v for k, v in pids.items() if k != "exporter@mini-yellow"
    }
    assert starts(deployed)["exporter@mini-yellow"] == runs["exporter@mini-yellow"] + 1
    assert "verified: 2 exporters answer /metrics from mini-red" in run.output
