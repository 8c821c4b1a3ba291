"""`make run-job` across the two simulated Minis (tests/hosts) after `make deploy`, over ssh.

mini-red and mini-yellow are network namespaces joined by a bridge, each with its own sshd,
/opt/minicluster and exporter (under the launchctl stand-in); Prometheus and Alertmanager
run on mini-red. The launcher runs here, on the control machine, exactly as on a laptop
driving the two Minis.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from minicluster.core.logformat import parse_line
from tests.hosts.clients import exporter_get
from tests.hosts.network import HOST_INTERFACE, ip
from tests.launcher.conftest import cli, deploy_pair, job_processes, pair_prometheus
from tests.support import (
    as_foreground_job,
    job_failure,
    require_tool,
    wait_until,
    without_outer_make,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
STEPS = 20
PG_TIMEOUT = 10  # seconds: a dead peer must fail the job this fast, not in gloo's 30 minutes
JOB_PROCESS_MARKERS = ("torch.distributed.run", "-m minicluster.trainer")


# --- helpers -------------------------------------------------------------------------------


def _job_processes(cluster, host) -> list[psutil.Process]:
    """torchrun and trainer processes in `host`'s namespace (not its exporter or sshd)."""
    return [p for p, _ in job_processes(cluster, host, JOB_PROCESS_MARKERS)]


def _is_rank(process: psutil.Process) -> bool:
    """A trainer that torchrun started: its parent is torchrun and it has the LOCAL_RANK
    torchrun gives each worker (torchrun's own command line names the trainer too)."""
    try:
        parent = process.parent()
        return (
            "-m minicluster.trainer" in " ".join(process.cmdline())
            and parent is not None
            and "torch.distributed.run" in " ".join(parent.cmdline())
            and "LOCAL_RANK" in process.environ()
        )
    except psutil.Error:  # gone meanwhile
        return False


def _nic_bytes(cluster, host) -> dict[str, float]:
    """The host exporter's byte counters of its training interface."""
    node = cluster.config.node(host.name)
    text = exporter_get(cluster.config, node).text
    counters = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("device") == HOST_INTERFACE and sample.name in (
                "node_network_transmit_bytes_total",
                "node_network_receive_bytes_total",
            ):
                counters[sample.name.split("_")[2]] = sample.value
    assert set(counters) == {"transmit", "receive"}, f"{host.name}: {counters}"
    return counters


def _record(runs: Path) -> dict:
    (path,) = runs.glob("*.json")
    return json.loads(path.read_text())


def _assert_merged_log(path: Path, steps: int | None) -> list:
    lines = path.read_text().splitlines()
    times = [line.split(" ", 1)[0] for line in lines]
    assert times == sorted(times), "merged log is not in time order"
    parsed = [p for p in map(parse_line, lines) if p]
    assert {(p.rank, p.node) for p in parsed} == {(0, "mini-red"), (1, "mini-yellow")}
    if steps is not None:
        last = {}
        for p in parsed:
            if p.message.startswith("step "):
                last[p.rank] = int(p.fields()["step"])
        assert last == {0: steps, 1: steps}
    return parsed


def _make_run_job(config: Path, out: Path, steps: int, flags: str) -> list[str]:
    make = require_tool("make", "apt-get install make")
    job_flags = f"--logs-dir {out / 'logs'} --runs-dir {out / 'runs'} {flags}"
    # -o: the venv is the one running this test; `make` must not try to rebuild it.
    return [make, "-C", str(REPO), "-o", ".venv/.installed", "run-job",
            f"CONFIG={config}", f"STEPS={steps}", f"JOB_FLAGS={job_flags}"]  # fmt: skip


# --- the deployed pair ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def minis(two_minis):
    """Both hosts deployed with a config whose down alerts fire after half a minute."""
    cluster = two_minis
    deploy_pair(cluster, alerts={"trainer_stalled_minutes": 0.5, "exporter_down_minutes": 0.5})
    return cluster


def test_a_job_runs_across_both_hosts_over_ssh(minis, tmp_path):
    cluster = minis
    before = {host.name: _nic_bytes(cluster, host) for host in cluster.hosts.values()}
    # Linger past a few scrapes so Prometheus sees every rank's final counters.
    result = subprocess.run(
        _make_run_job(cluster.config_path, tmp_path, STEPS, "--linger 8 --log-interval 5"),
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, job_failure(result)
    after = {host.name: _nic_bytes(cluster, host) for host in cluster.hosts.values()}

    record = _record(tmp_path / "runs")
    job_id, summary = record["job_id"], record["summary"]
    assert record["status"] == "succeeded"
    assert summary["steps"] == STEPS and summary["ranks_reported"] == 2
    assert record["commands"]["mini-yellow"][0] == "/opt/minicluster/venv/bin/python"

    # Every rank ran every step, as Prometheus on mini-red recorded it.
    prom = pair_prometheus(cluster)
    steps = prom.query(f'last_over_time(trainer_steps_total{{job_id="{job_id}"}}[10m])')
    assert {(s.labels["rank"], s.labels["node"], s.value) for s in steps} == {
        ("0", "mini-red", STEPS),
        ("1", "mini-yellow", STEPS),
    }
    # Both exporters scraped; both ranks found only through the exporters' /sd.
    assert {s.labels["node"] for s in prom.query('up{job="node"} == 1')} == {
        "mini-red",
        "mini-yellow",
    }
    ranks_up = prom.query(f'max_over_time(up{{job="trainer", job_id="{job_id}"}}[10m])')
    assert {(s.labels["rank"], s.labels["node"], s.value) for s in ranks_up} == {
        ("0", "mini-red", 1.0),
        ("1", "mini-yellow", 1.0),
    }

    # A ring all-reduce of B bytes over n ranks sends and receives 2(n-1)/n * B per rank;
    # with one rank per host all of it crosses the link.
    crossing = summary["allreduce_bytes"] * 2 * (2 - 1) / 2
    assert crossing >= STEPS * summary["grad_bytes"] > 0
    for host, counters in after.items():
        for direction in ("transmit", "receive"):
            grew = counters[direction] - before[host][direction]
            assert grew >= crossing, f"{host} {direction} grew {grew:.0f} < {crossing:.0f}"
            print(f"{host} {HOST_INTERFACE} {direction}: +{grew:.0f} B >= {crossing:.0f} B")
    print(
        f"{STEPS} steps, {summary['samples_per_second']:.0f} samples/s, "
        f"bus bandwidth {summary['allreduce_busbw_bytes_per_second'] / 1e6:.1f} MB/s, "
        f"comm {summary['comm_fraction']:.0%}, wall {summary['wall_seconds']:.1f} s"
    )

    # One merged log with both ranks in time order, and each rank's own file, over ssh.
    _assert_merged_log(tmp_path / "logs" / f"{job_id}.log", STEPS)
    assert sorted(p.name for p in (tmp_path / "logs" / job_id).iterdir()) == [
        "rank0.log",
        "rank1.log",
    ]

    # `minicluster logs` fetches them again over ssh and measures the clocks (one kernel
    # clock here, so no reordering note).
    again = tmp_path / "again"
    logs = subprocess.run(
        cli("logs", job_id, "--config", str(cluster.config_path), "--logs-dir", str(again)),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert logs.returncode == 0, logs.stderr
    assert "mini-yellow: 1 rank files" in logs.stderr, logs.stderr
    assert "note: clock" not in logs.stderr, logs.stderr
    _assert_merged_log(again / f"{job_id}.log", STEPS)

    def status() -> str:
        result = subprocess.run(
            cli("status", "--config", str(cluster.config_path)),
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return result.stdout

    # Retried: on a loaded machine one scrape of an exporter may time out for a moment.
    wait_until(lambda: "node 2/2 up" in status(), "status: both exporters up", 30)


def test_ctrl_c_on_make_run_job_leaves_no_trainer_on_either_host(minis, tmp_path):
    cluster = minis
    make = subprocess.Popen(
        _make_run_job(cluster.config_path, tmp_path, 100_000, "--step-sleep 0.1"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=as_foreground_job, env=without_outer_make(),
    )  # fmt: skip
    try:
        for host in cluster.hosts.values():
            wait_until(
                lambda host=host: any(_is_rank(p) for p in _job_processes(cluster, host)),
                f"a rank on {host.name}",
                timeout=180,
            )
        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C in the terminal running `make run-job`
        interrupted = time.monotonic()
        output, _ = make.communicate(timeout=120)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
    for host in cluster.hosts.values():
        wait_until(
            lambda host=host: not _job_processes(cluster, host),
            f"no torchrun or trainer left on {host.name}",
            timeout=10,
        )
    assert time.monotonic() - interrupted < 30, output[-3000:]
    record = _record(tmp_path / "runs")
    assert record["status"] == "interrupted" and record["exit_code"] == 130
    assert "mini-yellow: stopped PID" in output and "mini-red: stopped PID" in output


def test_cutting_mini_yellows_link_fails_the_job_within_the_pg_timeout(minis, tmp_path):
    cluster = minis
    prom = pair_prometheus(cluster)
    flags = f"--step-sleep 0.1 --log-interval 2 --pg-timeout-seconds {PG_TIMEOUT} --max-restarts 0"
    job_flags = f"--logs-dir {tmp_path / 'logs'} --runs-dir {tmp_path / 'runs'} {flags}"
    launcher = subprocess.Popen(
        cli("run-job", "--config", str(cluster.config_path), "--steps", "100000",
            *job_flags.split()),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    yellow = cluster.yellow
    try:
        # Both ranks past a logged step and scraped, so the merged log has lines of both
        # and Prometheus knows the rank that will vanish.
        wait_until(
            lambda: len(prom.query('trainer_steps_total{job="trainer"} >= 4')) == 2,
            "both ranks scraped after 4 steps",
            timeout=180,
        )
        cut = time.time()
        ip("-n", yellow.netns, "link", "set", HOST_INTERFACE, "down")
        output, _ = launcher.communicate(timeout=180)
        assert launcher.returncode not in (0, None), output[-3000:]
        record = _record(tmp_path / "runs")
        failed = datetime.fromisoformat(record["failure"]["at"]).timestamp()
        # Noticed by the master's rank (gloo timeout) or by ssh keep-alives (15 s), never
        # gloo's default 30 minutes.
        assert failed - cut < PG_TIMEOUT + 15, f"failed {failed - cut:.1f}s after the cut"
        print(f"the job failed {failed - cut:.1f}s after the cut: {record['status']}")
        assert record["exit_code"] == launcher.returncode

        # Everything up to the cut is kept: both ranks' steps in the merged log.
        parsed = _assert_merged_log(tmp_path / "logs" / f"{record['job_id']}.log", None)
        before_cut = {p.rank for p in parsed if p.message.startswith("step ") and p.timestamp < cut}
        assert before_cut == {0, 1}

        # mini-yellow's exporter and rank are down: the alerts fire on mini-red.
        def firing() -> set[tuple[str, str]]:
            alerts = prom.query('ALERTS{alertstate="firing"}')
            return {(a.labels["alertname"], a.labels.get("node", "")) for a in alerts}

        wait_until(
            lambda: (
                {("NodeExporterDown", "mini-yellow"), ("TrainerRankDown", "mini-yellow")}
                <= firing()
            ),
            "NodeExporterDown and TrainerRankDown for mini-yellow",
            timeout=240,
            interval=2,
        )
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
        ip("-n", yellow.netns, "link", "set", HOST_INTERFACE, "up")
    assert not _job_processes(cluster, cluster.red)
    # What the launcher could not stop on mini-yellow (its torchrun waits on TCP to the
    # vanished master) is stopped by the PID it recorded, as its note tells the user.
    job_id, pid = record["job_id"], record["pids"]["mini-yellow"]
    reaper = (
        f"/opt/minicluster/venv/bin/python -m minicluster.launcher.reap --expect {job_id} {pid}"
    )
    assert any(reaper in note for note in record["notes"]), record["notes"]
    wait_until(lambda: yellow.ssh("true", check=False).returncode == 0, "ssh to mini-yellow", 60)
    yellow.ssh(reaper, check=False)
    wait_until(lambda: not _job_processes(cluster, yellow), "nothing left on mini-yellow", 10)
