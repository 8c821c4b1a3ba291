"""A live stack for the tests: Debian's Prometheus and Alertmanager, two real exporters and a
real 2-rank training job, all from one local-profile Config rendered by `minicluster render`.

Everything runs on 127.0.0.1 with kernel-chosen ports, 1 s scrape and evaluation intervals
and `trainer_stalled_minutes` of 0.25 (15 s), so alerts fire within seconds. The job is
launched as two torchrun agents with c10d rendezvous, one per "node" (mini-red hosts the
rendezvous), so Prometheus discovers one rank through each exporter's `/sd`. A veth pair
(named after this process, removed at the end) gives the exporters an interface with a
link speed, which the container's own interfaces lack.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from minicluster.core import discovery
from minicluster.core.config import Config, parse_config
from minicluster.core.logformat import parse_line
from minicluster.demo.localstack import LocalStack
from minicluster.render.bundle import write_bundle
from tests.stack.helpers import local_config
from tests.support import free_port, require_tool, wait_until

SCRAPE_SECONDS = 1
STALLED_MINUTES = 0.25


class Webhook:
    """An Alertmanager webhook receiver on a kernel-chosen loopback port."""

    def __init__(self) -> None:
        self.notifications: list[dict] = []
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def alerts(self, alertname: str, status: str = "firing") -> list[tuple[str, dict]]:
        """(receiver, alert) of every delivered alert with that name and status."""
        return [
            (note["receiver"], alert)
            for note in list(self.notifications)
            for alert in note["alerts"]
            if alert["labels"].get("alertname") == alertname and alert["status"] == status
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Live:
    config: Config
    config_file: Path
    logs: Path
    prometheus: str
    alertmanager: str
    webhook: Webhook
    job_id: str
    exporter_urls: dict[str, str]
    agents: list[subprocess.Popen] = field(default_factory=list)

    def query(self, expr: str) -> list[dict]:
        """The result of an instant query; fails the test on an error."""
        response = requests.post(
            f"{self.prometheus}/api/v1/query", data={"query": expr}, timeout=10
        ).json()
        assert response["status"] == "success", f"{expr!r}: {response}"
        return response["data"]["result"]

    def wait_for_series(self, expr: str, timeout: float = 60, minimum: int = 1) -> list[dict]:
        return wait_until(
            lambda: (result := self.query(expr)) and len(result) >= minimum and result,
            f"{expr!r} to return {minimum}+ series",
            timeout=timeout,
            interval=0.5,
        )

    def ranks(self, job_id: str | None = None) -> dict[int, discovery.RankEntry]:
        """A job's live ranks by global rank, from the nodes' discovery files."""
        entries = [
            entry
            for node in self.config.nodes
            for entry in discovery.live_entries(node.run_dir)
            if entry.job_id == (job_id or self.job_id)
        ]
        return {entry.rank: entry for entry in entries}

    def grad_bytes(self) -> int:
        """Gradient bytes per step, from rank 0's `start` log line."""
        log_dir = self.config.trainer.resolve_dir(self.config.trainer.log_dir, self.config.master)
        for line in (Path(log_dir) / self.job_id / "rank0.log").read_text().splitlines():
            parsed = parse_line(line)
            if parsed and parsed.message.startswith("start "):
                return int(parsed.fields()["grad_bytes"])
        raise AssertionError("rank 0 logged no start line")

    def active(self, alertname: str, state: str = "firing", **labels: str) -> list[dict]:
        """Alerts of that name in `state` (pending or firing) whose labels include `labels`."""
        alerts = requests.get(f"{self.prometheus}/api/v1/alerts", timeout=10).json()
        return [
            a
            for a in alerts["data"]["alerts"]
            if a["labels"]["alertname"] == alertname
            and a["state"] == state
            and labels.items() <= a["labels"].items()
        ]

    def firing(self, alertname: str, **labels: str) -> list[dict]:
        return self.active(alertname, "firing", **labels)


def _stack_config(tmp: Path, webhook_url: str) -> Config:
    config = local_config(
        tmp,
        prometheus={
            "port": free_port(),
            "scrape_interval_seconds": SCRAPE_SECONDS,
            "scrape_timeout_seconds": SCRAPE_SECONDS,
            "evaluation_interval_seconds": SCRAPE_SECONDS,
            "sd_refresh_seconds": SCRAPE_SECONDS,
        },
        alertmanager={"port": free_port(), "webhook_url": webhook_url, "group_wait_seconds": 0},
        trainer={
            "nproc_per_node": 1,
            "rendezvous_port": free_port(),
            "checkpoint_interval": 20,
            "log_interval": 5,
            "linger_seconds": 2,
            "pg_timeout_seconds": 300,
        },
        alerts={"trainer_stalled_minutes": STALLED_MINUTES},
    )
    data = config.model_dump(mode="json")
    for node in data["nodes"]:
        node["exporter_port"] = free_port()
        node["metrics_base_port"] = free_port()
    return parse_config(data, "<live stack>")


class _Veth:
    """A veth pair in this network namespace, up, so the exporters see a link speed."""

    def __init__(self) -> None:
        self.ip = require_tool("ip", "apt-get install iproute2")
        if os.geteuid() != 0:
            pytest.fail("the live stack adds a veth pair: run the tests as root (CI does)")
        self.name = f"mcs{os.getpid()}"
        subprocess.run(
            [
                self.ip,
                "link",
                "add",
                f"{self.name}a",
                "type",
                "veth",
                "peer",
                "name",
                f"{self.name}b",
            ],
            check=True,
        )
        for end in "ab":
            subprocess.run([self.ip, "link", "set", f"{self.name}{end}", "up"], check=True)

    def remove(self) -> None:
        subprocess.run([self.ip, "link", "del", f"{self.name}a"], check=False)


def start_job(
    config: Config,
    config_file: Path,
    job_id: str,
    logs: Path,
    *,
    steps: int = 1_000_000,
    single_rank: bool = False,
    fresh_ports: bool = False,
    extra: tuple[str, ...] = (),
) -> list[subprocess.Popen]:
    """A training job: one torchrun agent per node with c10d rendezvous hosted by the
    master's agent, or with `single_rank` one standalone rank on the master.

    `fresh_ports` gives the job new rendezvous and metrics ports, so that it can run
    beside the session's job, which holds the configured ones.
    """
    nodes = [config.master] if single_rank else config.nodes
    fresh = fresh_ports
    if single_rank:
        rendezvous = ["--standalone", "--nnodes=1"]
    else:
        port = free_port() if fresh else config.trainer.rendezvous_port
        rendezvous = [
            f"--nnodes={len(nodes)}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={config.master.address}:{port}",
            f"--rdzv-id={job_id}",
        ]
    agents = []
    for node in nodes:
        is_host = "true" if node.role == "master" else "false"
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            *rendezvous,
            "--nproc-per-node=1",
            *([] if single_rank else [f"--rdzv-conf=is_host={is_host}"]),
            f"--local-addr={node.address}",
            "--max-restarts=0",
            "-m",
            # Without "--" torchrun takes the trainer's --node for its own --node-rank.
            "--",
            "trainer",
            "--config",
            str(config_file),
            "--node",
            node.name,
            "--job-id",
            job_id,
            "--steps",
            str(steps),
            # Slow and lean: the machine is shared; 20 steps/s is plenty for rates.
            "--step-sleep",
            "0.05",
            *(["--metrics-base-port", str(free_port())] if fresh else []),
            *extra,
        ]
        with open(logs / f"torchrun-{job_id}-{node.name}.log", "ab") as log:
            agents.append(
                subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    env={
                        **os.environ,
                        "PYTHONUNBUFFERED": "1",
                        "OMP_NUM_THREADS": "1",
                        "GLOO_SOCKET_IFNAME": node.interface,
                    },
                )
            )
    return agents


def stop_job(agents: list[subprocess.Popen]) -> None:
    """SIGTERM each agent's process group (the agent and its ranks), SIGKILL stragglers."""
    for agent in agents:
        if agent.poll() is None:
            os.killpg(agent.pid, signal.SIGCONT)  # a rank may still be paused
            os.killpg(agent.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for agent in agents:
        try:
            agent.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait()


@pytest.fixture(scope="session")
def live(tmp_path_factory) -> Live:
    require_tool("prometheus", "apt-get install prometheus (Homebrew: prometheus)")
    tmp = tmp_path_factory.mktemp("live-stack")
    webhook = Webhook()
    config = _stack_config(tmp, webhook.url)
    config_file = tmp / "config.yaml"
    config_file.write_text(config.to_yaml())
    stack_dir = tmp / "stack"
    write_bundle(config, stack_dir)
    logs = tmp / "logs"
    logs.mkdir()
    job_id = f"live-{os.getpid()}"

    veth = _Veth()
    stack = LocalStack(config, stack_dir, tmp)
    agents: list[subprocess.Popen] = []
    try:
        exporter_urls = {
            node.name: stack.start_exporter(node, config_file).url for node in config.nodes
        }
        am = stack.start_alertmanager()
        prom = stack.start_prometheus()
        agents = start_job(config, config_file, job_id, logs)
        live = Live(
            config, config_file, logs, prom.url, am.url, webhook, job_id, exporter_urls, agents
        )
        # Both ranks discovered through /sd and scraped, and rates computed over them.
        live.wait_for_series(
            f'job_rank:trainer_steps:rate{{job_id="{job_id}"}} > 0', timeout=120, minimum=2
        )
        yield live
    finally:
        stop_job(agents)
        stack.stop()
        webhook.close()
        veth.remove()
