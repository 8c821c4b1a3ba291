"""Four simulated Minis, grown from a deployed pair: the state the tests in this folder share.

`grown` (package scope: torn down when this folder's tests are done, so its four exporters
do not run on through the rest of the suite) builds four hosts (mini-one is the master),
deploys the first two, records their services, then adds the other two to config.yaml
and deploys again, as a user who buys two more Minis does. Both deploys' output and the
services' PIDs and launchd start counts before and after the second are kept for the
growth tests; the four-host tests use the grown cluster. A test that leaves another node
set deployed marks it `stale`, and the next user of `four_deployed` deploys the four again.

Each host's sshd, and so its exporter and its ranks, is pinned to one of the machine's two
cores (two hosts per core) with one compute thread per rank.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from minicluster.deploy.wheel import build_wheel
from minicluster.render.launchd import LABEL_PREFIX, exporter_label
from tests.deploy.conftest import Run, minicluster
from tests.hosts.clients import prometheus_url, service_get
from tests.hosts.cluster import SimulatedCluster
from tests.hosts.fixtures import simulated_minis
from tests.support import wait_until

NAMES = ("mini-one", "mini-two", "mini-three", "mini-four")
FIRST_PAIR = list(NAMES[:2])
EXPORTER = exporter_label()
MASTER_SERVICES = tuple(LABEL_PREFIX + s for s in ("prometheus", "alertmanager"))
# Quick alerts: a rank that stops answering or a straggler is reported within seconds.
ALERTS = {
    "trainer_stalled_minutes": 0.25,
    "exporter_down_minutes": 0.5,
    "straggler_for_minutes": 0.25,
}
DEPLOY_TIMEOUT = 900


def run_cli(*args: str, timeout: float = DEPLOY_TIMEOUT, columns: int = 250) -> Run:
    """`minicluster` as tests/deploy runs it, with the longer deadline of four hosts."""
    return minicluster(*args, timeout=timeout, columns=columns)


@dataclass
class Services:
    """Every service's launchd PID and start count, by "label@node"."""

    pids: dict[str, int | None]
    runs: dict[str, int]

    @classmethod
    def of(cls, cluster: SimulatedCluster, names: list[str]) -> Services:
        pids, runs = {}, {}
        for name in names:
            host = cluster.hosts[name]
            labels = [EXPORTER, *(MASTER_SERVICES if host is cluster.master else ())]
            for label in labels:
                pids[f"{label}@{name}"] = host.service_pid(label)
                runs[f"{label}@{name}"] = (host.launchd_job(label) or {}).get("runs", 0)
        return cls(pids, runs)


@dataclass
class Grown:
    cluster: SimulatedCluster
    wheel: Path
    pair_deploy: Run  # the first deploy: mini-one and mini-two
    grow_deploy: Run  # the second: all four
    before: Services  # the pair's services just before the second deploy
    after: Services  # the same services just after it
    worker_config_before: str  # mini-two's installed config.yaml before the second deploy
    stale: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def deploy(self, config: Path | None = None) -> Run:
        path = config or self.cluster.config_path
        return run_cli("deploy", "--config", str(path), "--wheel", str(self.wheel))

    def prometheus(self, path: str, **params) -> dict:
        config = self.cluster.config
        response = service_get(config, prometheus_url(config, path), timeout=10, params=params)
        response.raise_for_status()
        return response.json()["data"]

    def query(self, promql: str) -> list[dict]:
        return self.prometheus("/api/v1/query", query=promql)["result"]

    def nodes_up(self) -> dict[str, str]:
        return {s["metric"]["node"]: s["value"][1] for s in self.query('up{job="node"}')}


def installed_config(cluster: SimulatedCluster, name: str) -> str:
    return cluster.hosts[name].path("/opt/minicluster/config.yaml").read_text()


@pytest.fixture(scope="package")
def grown(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grown]:
    started = time.monotonic()
    with simulated_minis(tmp_path_factory.mktemp("four"), NAMES) as cluster:
        wheel = build_wheel(tmp_path_factory.mktemp("wheel")).path
        cluster.write_config(nodes=FIRST_PAIR, alerts=ALERTS)
        pair = run_cli("deploy", "--config", str(cluster.config_path), "--wheel", str(wheel))
        assert pair.returncode == 0, pair.output
        before = Services.of(cluster, FIRST_PAIR)
        worker_config = installed_config(cluster, "mini-two")

        cluster.write_config(alerts=ALERTS)  # all four
        grow = run_cli("deploy", "--config", str(cluster.config_path), "--wheel", str(wheel))
        assert grow.returncode == 0, grow.output
        after = Services.of(cluster, FIRST_PAIR)
        state = Grown(cluster, wheel, pair, grow, before, after, worker_config)
        wait_until(
            lambda: state.nodes_up() == dict.fromkeys(NAMES, "1"),
            "Prometheus on mini-one to scrape all four exporters",
            timeout=120,
        )
        state.timings = {
            "pair deploy": pair.seconds,
            "grow deploy": grow.seconds,
            "fixture": time.monotonic() - started,
        }
        print(f"four hosts: {', '.join(f'{k} {v:.0f}s' for k, v in state.timings.items())}")
        yield state


@pytest.fixture
def four_deployed(grown: Grown) -> Grown:
    """All four nodes deployed from the harness config, whatever ran before."""
    if grown.stale:
        grown.cluster.write_config(alerts=ALERTS)
        again = grown.deploy()
        assert again.returncode == 0, again.output
        grown.stale = False
    return grown
