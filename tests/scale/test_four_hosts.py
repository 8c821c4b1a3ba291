"""The whole stack on four simulated Minis (mini-one the master, three workers), deployed
once for the module (tests/scale/conftest.py): a job of world size 4, Prometheus finding
every exporter and rank, the recording rules, dashboards and alerts answering per node and
per rank with one rank slowed and one stopped, the merged log of four ranks, and `doctor`
and `top` readable at 80 columns."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from minicluster.core.logformat import parse_line
from minicluster.render.dashboards import dashboards
from tests.launcher.conftest import cli
from tests.scale.conftest import NAMES, Grown, run_cli
from tests.support import job_failure, wait_until

pytestmark = pytest.mark.e2e

STEPS = 30
LONG_STEPS = 1_000_000  # stopped by Ctrl-C
SLOWED, STOPPED = "mini-three", "mini-four"
# SIGSTOP for this long out of every twice this long: the slowed rank computes at about
# half the speed of the others, averaged over thousands of pauses a minute.
PAUSE_SECONDS = 0.01


@pytest.fixture
def cluster4(four_deployed: Grown) -> Grown:
    return four_deployed


def run_job(grown: Grown, out: Path, *flags: str) -> list[str]:
    return cli(
        "run-job", "--config", str(grown.cluster.config_path),
        "--logs-dir", str(out / "logs"), "--runs-dir", str(out / "runs"), *flags,
    )  # fmt: skip


def record(out: Path) -> dict:
    (path,) = (out / "runs").glob("*.json")
    return json.loads(path.read_text())


def merged_log(path: Path) -> list:
    """The merged log's parsed lines, checked to be in time order."""
    lines = path.read_text().splitlines()
    times = [line.split(" ", 1)[0] for line in lines]
    assert times == sorted(times), "merged log is not in time order"
    return [p for p in map(parse_line, lines) if p]


def rank_nodes(grown: Grown, job_id: str) -> dict[str, str]:
    """rank -> node, as Prometheus discovered the ranks through the exporters' /sd."""
    series = grown.query(f'max_over_time(up{{job="trainer", job_id="{job_id}"}}[10m])')
    return {s["metric"]["rank"]: s["metric"]["node"] for s in series}


def job_processes(grown: Grown, name: str) -> list[tuple[psutil.Process, str]]:
    """(process, command line) of torchrun and the trainer in host `name`'s namespace."""
    found = []
    for pid in grown.cluster.hosts[name].pids(grown.cluster.lan):
        try:
            process = psutil.Process(pid)
            command = " ".join(process.cmdline())
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        if "minicluster.trainer" in command:
            found.append((process, command))
    return found


def rank_process(grown: Grown, name: str) -> psutil.Process:
    """The trainer rank (not torchrun) running in host `name`'s namespace."""
    found = [p for p, command in job_processes(grown, name) if "torch.distributed" not in command]
    assert len(found) == 1, f"{name}: {[p.cmdline() for p in found]}"
    return found[0]


def values(series: list[dict], label: str = "rank") -> dict[str, float]:
    return {s["metric"][label]: float(s["value"][1]) for s in series}


def firing(grown: Grown, alertname: str, job_id: str) -> set[tuple[str, str]]:
    alerts = grown.query(f'ALERTS{{alertname="{alertname}", alertstate="firing"}}')
    return {
        (a["metric"]["rank"], a["metric"]["node"])
        for a in alerts
        if a["metric"].get("job_id") == job_id
    }


class Slowdown:
    """Pauses a process for PAUSE_SECONDS out of every 2 * PAUSE_SECONDS, in a thread."""

    def __init__(self, pid: int):
        self.pid, self.done = pid, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.done.is_set():
            os.kill(self.pid, signal.SIGSTOP)
            time.sleep(PAUSE_SECONDS)
            os.kill(self.pid, signal.SIGCONT)
            time.sleep(PAUSE_SECONDS)

    def __enter__(self) -> Slowdown:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=5)
        os.kill(self.pid, signal.SIGCONT)


def test_a_job_runs_on_all_four_hosts_and_every_rank_is_found(cluster4: Grown, tmp_path):
    started = time.monotonic()
    result = subprocess.run(
        run_job(cluster4, tmp_path, "--steps", str(STEPS), "--linger", "8", "--log-interval", "5"),
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, job_failure(result)
    job = record(tmp_path)
    job_id, summary = job["job_id"], job["summary"]
    assert job["status"] == "succeeded"
    assert summary["steps"] == STEPS and summary["ranks_reported"] == 4
    assert sorted(job["commands"]) == sorted(NAMES)

    # One rank per host, rank 0 on the master (the rendezvous host), found through /sd.
    placed = rank_nodes(cluster4, job_id)
    assert sorted(placed) == ["0", "1", "2", "3"]
    assert sorted(placed.values()) == sorted(NAMES) and placed["0"] == "mini-one"
    steps = cluster4.query(f'last_over_time(trainer_steps_total{{job_id="{job_id}"}}[10m])')
    assert {(s["metric"]["rank"], s["metric"]["node"], s["value"][1]) for s in steps} == {
        (rank, node, str(STEPS)) for rank, node in placed.items()
    }
    assert cluster4.nodes_up() == dict.fromkeys(NAMES, "1")

    # The merged log: all four ranks, each on its node, every step logged to the last.
    parsed = merged_log(tmp_path / "logs" / f"{job_id}.log")
    assert {(str(p.rank), p.node) for p in parsed} == set(placed.items())
    last = {}
    for p in parsed:
        if p.message.startswith("step "):
            last[p.rank] = int(p.fields()["step"])
    assert last == dict.fromkeys(range(4), STEPS)
    assert sorted(p.name for p in (tmp_path / "logs" / job_id).iterdir()) == [
        f"rank{r}.log" for r in range(4)
    ]
    print(f"four-host job of {STEPS} steps: {time.monotonic() - started:.0f}s")


def dashboard_series(grown: Grown, job_id: str) -> dict[str, list[dict]]:
    """Every dashboard query's result, by "dashboard: expr"."""
    results = {}
    for name, dashboard in dashboards(grown.cluster.config).items():
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = re.sub(
                    r"\$\{?(\w+)\}?",
                    lambda m: {"job_id": job_id, "__rate_interval": "1m"}.get(m[1], ".*"),
                    target["expr"],
                )
                results[f"{name}: {expr}"] = grown.query(expr)
    return results


def check_dashboards(grown: Grown, job_id: str, placed: dict[str, str]) -> None:
    """The dashboards' queries answer for exactly the four nodes and the four ranks."""
    results = dashboard_series(grown, job_id)
    for query, result in results.items():
        expr = query.split(": ", 1)[1]
        nodes = {s["metric"]["node"] for s in result if "node" in s["metric"]}
        assert nodes <= set(NAMES), query
        if expr.startswith("node:") or expr.startswith('up{job="node"'):
            assert nodes == set(NAMES), query  # every per-node panel shows all four
        if expr.startswith("job_rank:"):
            ranks = {(s["metric"]["rank"], s["metric"]["node"]) for s in result}
            assert ranks == set(placed.items()), query
    by_expr = {q.split(": ", 1)[1]: r for q, r in results.items()}
    (ranks_up,) = by_expr[f'count by (job_id) (up{{job="trainer", job_id=~"{job_id}"}} == 1)']
    assert ranks_up["value"][1] == "4"
    cpu = values(by_expr['node:cpu_utilisation:ratio{node=~".*"}'], "node")
    assert set(cpu) == set(NAMES) and all(0 < v <= 1 for v in cpu.values()), cpu
    # A ring all-reduce moves the same bytes through every rank: the network dashboard's
    # per-node all-reduce traffic is one number four times (to within what scrapes at
    # different moments give: the same allowance as the step rates below, since the bytes
    # are steps times the gradient's size).
    sent = values(
        by_expr[
            f'sum by (node) (job_rank:trainer_allreduce_bytes:rate{{job_id=~"{job_id}", '
            'node=~".*"})'
        ],
        "node",
    )
    assert set(sent) == set(NAMES) and min(sent.values()) > 0
    assert max(sent.values()) <= 1.25 * min(sent.values()), sent
    # Peer probes: the master probes every worker, each worker probes the master (a
    # worker's installed config lists only the master and itself).
    rtt = by_expr['minicluster_peer_rtt_seconds{job="node", node=~".*"}']
    master, workers = NAMES[0], NAMES[1:]
    assert {(s["metric"]["node"], s["metric"]["peer"]) for s in rtt} == {
        *((master, w) for w in workers),
        *((w, master) for w in workers),
    }


def test_straggler_and_stopped_rank_are_named_among_four(cluster4: Grown, tmp_path):
    started = time.monotonic()
    launcher = subprocess.Popen(
        run_job(cluster4, tmp_path, "--steps", str(LONG_STEPS), "--log-interval", "200",
                "--step-sleep", "0.02", "--pg-timeout-seconds", "300", "--max-restarts", "0"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        # This job's four ranks (not the previous job's, which may linger): the one job
        # whose ranks all target LONG_STEPS and answer.
        found = wait_until(
            lambda: cluster4.query(
                f'count by (job_id) (up{{job="trainer"}} == 1 and on (job_id, rank) '
                f'trainer_target_steps{{job="trainer"}} == {LONG_STEPS}) == 4'
            ),
            "four ranks of the long job discovered and up",
            timeout=240,
        )
        (job_id,) = {s["metric"]["job_id"] for s in found}
        placed = rank_nodes(cluster4, job_id)
        rank_of = {node: rank for rank, node in placed.items()}
        slowed = rank_process(cluster4, SLOWED)

        with Slowdown(slowed.pid):
            # The straggler ratio (median compute time per step over the rank's own) names
            # the slowed rank only; the alert fires for it alone, on its node.
            wait_until(
                lambda: firing(cluster4, "TrainerStraggler", job_id) == {(rank_of[SLOWED], SLOWED)},
                f"TrainerStraggler for {SLOWED} only",
                timeout=180,
                interval=1,
            )
            selector = f'{{job_id="{job_id}"}}'
            ratios = values(cluster4.query(f"job_rank:trainer_straggler:ratio{selector}"))
            assert set(ratios) == set(placed)
            assert ratios[rank_of[SLOWED]] < 0.8, ratios
            assert all(v >= 0.8 for r, v in ratios.items() if r != rank_of[SLOWED]), ratios
            compute = values(
                cluster4.query(
                    f'job_rank:trainer_compute_seconds_per_step:ratio{{job_id="{job_id}"}}'
                )
            )
            others = [v for r, v in compute.items() if r != rank_of[SLOWED]]
            assert compute[rank_of[SLOWED]] > 1.25 * max(others), compute
            # Ranks step together (each all-reduce waits for all): one step rate for all four
            # (to within what scrapes at different moments of a one-minute window give),
            # and the job's sample rate is the four ranks' sum.
            rates = values(cluster4.query(f'job_rank:trainer_steps:rate{{job_id="{job_id}"}}'))
            assert set(rates) == set(placed) and min(rates.values()) > 0
            assert max(rates.values()) <= 1.25 * min(rates.values()), rates
            samples = values(cluster4.query(f'job_rank:trainer_samples:rate{{job_id="{job_id}"}}'))
            (total,) = cluster4.query(f'job:trainer_samples:sum_rate{{job_id="{job_id}"}}')
            assert float(total["value"][1]) == pytest.approx(sum(samples.values()), rel=0.05)
            check_dashboards(cluster4, job_id, placed)

        # `top` while the job runs: every node, no line wider than 80 columns.
        top = run_cli("top", "--once", "--config", str(cluster4.cluster.config_path),
                      timeout=60, columns=80)  # fmt: skip
        assert top.returncode == 0, top.output
        assert_fits(top.output, 80)
        for name in NAMES:
            assert name in top.output, top.output

        # One rank stopped for good: TrainerRankDown names it and its node; the three that
        # wait on it in their all-reduce answer but take no step: TrainerStalled for them.
        stopped = rank_process(cluster4, STOPPED)
        os.kill(stopped.pid, signal.SIGSTOP)
        try:
            wait_until(
                lambda: (
                    firing(cluster4, "TrainerRankDown", job_id) == {(rank_of[STOPPED], STOPPED)}
                ),
                f"TrainerRankDown for {STOPPED}",
                timeout=120,
                interval=1,
            )
            wait_until(
                lambda: (
                    firing(cluster4, "TrainerStalled", job_id)
                    == {(r, n) for r, n in placed.items() if n != STOPPED}
                ),
                "TrainerStalled for the three waiting ranks",
                timeout=120,
                interval=1,
            )
            up = values(cluster4.query(f'up{{job="trainer", job_id="{job_id}"}}'))
            assert up == {r: (0.0 if n == STOPPED else 1.0) for r, n in placed.items()}
        finally:
            os.kill(stopped.pid, signal.SIGCONT)
        wait_until(
            lambda: not firing(cluster4, "TrainerRankDown", job_id),
            "TrainerRankDown to clear after SIGCONT",
            timeout=60,
            interval=1,
        )
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGINT)  # Ctrl-C: the job stops on every node
        try:
            output, _ = launcher.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            raise
    job = record(tmp_path)
    assert job["status"] == "interrupted", output[-3000:]
    for name in NAMES:  # Ctrl-C stopped the job everywhere: no rank or torchrun is left
        wait_until(
            lambda name=name: not job_processes(cluster4, name),
            f"no torchrun or trainer left on {name}",
            timeout=30,
        )
    parsed = merged_log(tmp_path / "logs" / f"{job['job_id']}.log")
    assert {(str(p.rank), p.node) for p in parsed} == set(placed.items())
    print(f"slowed and stopped ranks among four: {time.monotonic() - started:.0f}s")


def assert_fits(output: str, columns: int) -> None:
    wide = [line for line in output.splitlines() if len(line) > columns]
    assert wide == [], "\n".join(wide)


def test_doctor_checks_all_four_and_fits_80_columns(cluster4: Grown):
    doctor = run_cli("doctor", "--config", str(cluster4.cluster.config_path), columns=80)
    assert doctor.returncode == 0, doctor.output
    assert_fits(doctor.output, 80)
    first_words = [line.split()[0] for line in doctor.output.splitlines() if line.split()]
    for name in NAMES:  # each node named whole at the start of its rows, never folded
        assert name in first_words, doctor.output
    assert "checks passed on 4 nodes" in doctor.output
