"""`minicluster status` against a real Prometheus (Debian's), scraping stand-in exporters
and ranks served by prometheus_client with known values."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from minicluster.commands.status import collect
from minicluster.core.promapi import Prometheus, PrometheusUnreachable
from tests.launcher.conftest import loopback_config, run_cli, write_config
from tests.support import free_port, require_tool, wait_until

pytestmark = pytest.mark.integration

JOB = "20261128-154000-abc123"
RATES = {0: 20.0, 1: 10.0}  # steps/s of the stand-in ranks


class FakeRank:
    """A rank's metrics, stepping at a fixed rate."""

    def __init__(self, port: int, rate: float) -> None:
        self.registry = CollectorRegistry()
        self.steps = Counter("trainer_steps", "steps", registry=self.registry)
        Gauge("trainer_target_steps", "t", registry=self.registry).set(10_000)
        Gauge("trainer_job_finished", "f", registry=self.registry).set(0)
        self.server, self.thread = start_http_server(port, "127.0.0.1", registry=self.registry)
        self.rate, self.stop = rate, threading.Event()
        self.ticker = threading.Thread(target=self._tick, daemon=True)
        self.ticker.start()

    def _tick(self) -> None:
        while not self.stop.wait(1 / self.rate):
            self.steps.inc()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()


@pytest.fixture
def prometheus(tmp_path: Path):
    binary = require_tool("prometheus", "apt-get install prometheus (Debian) or brew install")
    exporter_port, dead_port = free_port(), free_port()
    rank_ports = {rank: free_port() for rank in RATES}
    exporter = CollectorRegistry()
    Gauge("node_load1", "load", registry=exporter).set(0.5)
    exporter_server, _ = start_http_server(exporter_port, "127.0.0.1", registry=exporter)
    ranks = {rank: FakeRank(port, RATES[rank]) for rank, port in rank_ports.items()}
    nodes = {0: "mini-red", 1: "mini-yellow"}
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yml")],
        "scrape_configs": [
            {
                "job_name": "node",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{exporter_port}"],
                     "labels": {"node": "mini-red", "role": "master"}},
                    {"targets": [f"127.0.0.1:{dead_port}"],
                     "labels": {"node": "mini-yellow", "role": "worker"}},
                ],
            },
            {
                "job_name": "trainer",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{port}"],
                     "labels": {"job_id": JOB, "rank": str(rank), "local_rank": "0",
                                "node": nodes[rank]}}
                    for rank, port in rank_ports.items()
                ],
            },
        ],
    }  # fmt: skip
    rules = {
        "groups": [
            {
                "name": "test",
                "rules": [
                    {"alert": "TestTargetDown", "expr": "up == 0",
                     "labels": {"severity": "critical"}},
                ],
            }
        ]
    }  # fmt: skip
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(f"{url}/-/ready", timeout=1).ok, "Prometheus ready")
        yield url, port
    finally:
        process.terminate()
        process.wait(timeout=30)
        exporter_server.shutdown()
        for rank in ranks.values():
            rank.close()


def test_status_shows_nodes_the_job_per_rank_and_firing_alerts(tmp_path, prometheus):
    url, port = prometheus
    prom = Prometheus(url)
    # Enough scrapes for a rate, and the alert evaluated.
    wait_until(lambda: len(prom.query('ALERTS{alertstate="firing"}')) == 1, "the alert", 60)
    wait_until(lambda: len(prom.query("irate(trainer_steps_total[1m])")) == 2, "2 scrapes", 60)

    config = loopback_config(tmp_path / "state")
    status = collect(prom, config)
    assert status.nodes == [("mini-red", "master", True), ("mini-yellow", "worker", False)]
    assert status.targets == {"node": (1, 2), "trainer": (2, 2)}
    (ranks,) = status.jobs.values()
    assert list(status.jobs) == [JOB]
    assert [(r.rank, r.node, r.up, r.target, r.finished) for r in ranks] == [
        (0, "mini-red", True, 10_000, False),
        (1, "mini-yellow", True, 10_000, False),
    ]
    for rank in ranks:
        assert rank.rate == pytest.approx(RATES[rank.rank], rel=0.25)
        assert rank.steps > 0
    assert ranks[0].steps > ranks[1].steps
    (alert,) = status.alerts
    assert alert["alertname"] == "TestTargetDown" and alert["node"] == "mini-yellow"

    # The command finds Prometheus from the config: the master's address and port.
    data = config.model_dump(mode="json")
    data["prometheus"]["port"] = port
    config_file = write_config(type(config).model_validate(data), tmp_path / "config.yaml")
    result = run_cli("status", "--config", str(config_file), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"Prometheus {url}" in out
    assert "mini-yellow" in out and "DOWN" in out
    assert f"job {JOB}" in out and "running" in out
    assert "TestTargetDown" in out and "critical" in out
    assert "targets: node 1/2 up, trainer 2/2 up" in out


def test_status_says_which_prometheus_it_could_not_reach(tmp_path):
    config = loopback_config(tmp_path / "state")
    config_file = write_config(config, tmp_path / "config.yaml")
    result = run_cli("status", "--config", str(config_file), cwd=tmp_path)
    assert result.returncode == 1
    url = f"http://127.0.0.1:{config.prometheus.port}"
    assert f"Prometheus at {url} is unreachable (connection refused)" in result.stderr
    with pytest.raises(PrometheusUnreachable, match="unreachable \\(connection refused\\)"):
        Prometheus(f"http://127.0.0.1:{config.prometheus.port}").query("up")
