"""`minicluster top --once` against the live stack (a real Prometheus, two exporters and a
2-rank job): every figure it prints equals what Prometheus answers for the matching query
at the moment top asked. The queries here are written out independently of
minicluster.top.queries and evaluated at every 0.1 s of the span from just before top
starts until just after it exits, so a figure passes when it equals one of those values
(the span holds a scrape or two), within the printed rounding.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.top.figures import Sampler, check_figure

pytestmark = pytest.mark.e2e

WIDTH = 80


def _top(live, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(WIDTH), "LINES": "24", "TERM": "dumb"}
    return subprocess.run(
        [sys.executable, "-m", "minicluster", "top", "--once", *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _expressions(live) -> dict[str, str]:
    """Figure key -> PromQL, one per figure top prints for this stack."""
    exprs = {
        "alerts": 'count(ALERTS{alertstate="firing", alertname!="Watchdog"}) or vector(0)',
        "watchdog": 'count(ALERTS{alertstate="firing", alertname="Watchdog"}) or vector(0)',
    }
    for node in live.config.nodes:
        n, dev = f'node="{node.name}"', f'device="{node.interface}"'
        exprs |= {
            f"{node.name}/EXP": f'up{{job="node", {n}}}',
            f"{node.name}/CPU": f"node:cpu_utilisation:ratio{{{n}}}",
            f"{node.name}/MEM": f"1 - node:memory_available:ratio{{{n}}}",
            f"{node.name}/PRES": f"minicluster_memory_pressure_level{{{n}}}",
            f"{node.name}/GPU": f"max(minicluster_gpu_utilization_ratio{{{n}}})",
            f"{node.name}/RX/s": f"rate(node_network_receive_bytes_total{{{n}, {dev}}}[1m])",
            f"{node.name}/TX/s": f"rate(node_network_transmit_bytes_total{{{n}, {dev}}}[1m])",
            f"{node.name}/LINK": f"node_network_speed_bytes{{{n}, {dev}}}",
            f"{node.name}/KIND": f"minicluster_network_link_info{{{n}, {dev}}}",
            f"{node.name}/RTT": f"max(minicluster_peer_rtt_seconds{{{n}}})",
        }
    job = f'job_id="{live.job_id}"'
    for rank in (0, 1):
        r = f'{job}, rank="{rank}"'
        exprs |= {
            f"r{rank}/STEPS": f"trainer_steps_total{{{r}}}",
            f"r{rank}/DONE": f"trainer_steps_total{{{r}}} / trainer_target_steps{{{r}}}",
            f"r{rank}/STEP/s": f"job_rank:trainer_steps:rate{{{r}}}",
            f"r{rank}/LAG": (
                f"max(trainer_steps_total{{{job}}}) - scalar(trainer_steps_total{{{r}}})"
            ),
            f"r{rank}/COMM": f"job_rank:trainer_comm_fraction:ratio{{{r}}}",
            f"r{rank}/AR-BW/s": f"job_rank:trainer_allreduce_busbw:bytes_per_second{{{r}}}",
            f"r{rank}/TARGET": f"trainer_target_steps{{{r}}}",
        }
    exprs |= {
        "job/progress": f"min(trainer_steps_total{{{job}}}) / max(trainer_target_steps{{{job}}})",
        "job/steps": f"min(trainer_steps_total{{{job}}})",
        "job/ETA": f"job:trainer_eta:seconds{{{job}}}",
        "job/comm": f"job:trainer_comm_fraction:min{{{job}}}",
        "job/lag": f"max(trainer_steps_total{{{job}}}) - min(trainer_steps_total{{{job}}})",
    }
    return exprs


def _rows(lines: list[str], header: str, after: str = "") -> list[list[str]]:
    """The whitespace-split rows of the first table whose header line starts with `header`
    (below the first line starting with `after`, when given), up to the next line that is
    not a table row. Other jobs of the session (ended ones too) have rank tables of their
    own, in any order."""
    first = next(i for i, line in enumerate(lines) if line.startswith(after)) if after else 0
    start = next(i for i, line in enumerate(lines) if i > first and line.split()[:1] == [header])
    columns = len(lines[start].split())
    rows = []
    for line in lines[start + 1 :]:
        cells = line.split()
        if len(cells) != columns:
            break
        rows.append(cells)
    return rows


def test_once_prints_the_figures_prometheus_answers(live):
    # Rates over the rules' 1 m window need a minute of the job to be steady figures.
    live.wait_for_series(f'job:trainer_eta:seconds{{job_id="{live.job_id}"}}', timeout=120)
    live.wait_for_series("node:cpu_utilisation:ratio", minimum=2, timeout=120)
    sampler = Sampler(live.prometheus, _expressions(live))
    sampler.start()
    try:
        done = _top(live, "--config", str(live.config_file))
    finally:
        sampler.stop()
    assert done.returncode == 0, done.stderr
    frame = done.stdout
    print(frame)
    lines = [line for line in frame.splitlines() if line.strip()]
    assert all(len(line) <= WIDTH for line in frame.splitlines()), frame
    assert lines[0].startswith(f"minicluster top  {live.prometheus}")

    nodes = _rows(lines, "NODE")
    assert [row[0] for row in nodes] == [n.name for n in live.config.nodes]
    header = lines[next(i for i, line in enumerate(lines) if line.startswith("NODE"))].split()
    for row in nodes:
        node = row[0]
        cells = dict(zip(header, row, strict=True))
        assert cells["EXP"] == "up" and sampler.seen(f"{node}/EXP") == {1.0}
        for column in ("CPU", "MEM", "PRES", "GPU", "RX/s", "TX/s", "RTT"):
            check_figure(cells[column], sampler.values(f"{node}/{column}"), f"{node} {column}")
        if sampler.values(f"{node}/LINK"):
            check_figure(cells["LINK"], sampler.values(f"{node}/LINK"), f"{node} LINK")
        else:
            kinds = sampler.labels(f"{node}/KIND", "kind")
            assert cells["LINK"] in kinds, (cells["LINK"], kinds)
            assert cells["UTIL"] == "-"

    job_line = next(line for line in lines if line.startswith(f"job {live.job_id}"))
    match = re.fullmatch(
        rf"job {live.job_id}  (\S+) (\S+)/(\S+)  ETA (\S+)  comm (\S+)  slowest r(\d) lag (\S+)",
        job_line,
    )
    assert match, job_line
    progress, steps, target, eta, comm, slowest, lag = match.groups()
    check_figure(progress, sampler.values("job/progress"), "job progress")
    check_figure(steps, sampler.values("job/steps"), "job slowest steps")
    check_figure(target, sampler.values("r0/TARGET"), "job target")
    check_figure(eta, sampler.values("job/ETA"), "job ETA")
    check_figure(comm, sampler.values("job/comm"), "job comm")
    check_figure(lag, sampler.values("job/lag"), "slowest rank lag")

    ranks = _rows(lines, "RANK", after=job_line)
    assert [row[0] for row in ranks] == ["0", "1"]
    rank_header = next(
        line for line in lines[lines.index(job_line) :] if line.startswith("RANK")
    ).split()
    for row in ranks:
        cells = dict(zip(rank_header, row, strict=True))
        rank = cells["RANK"]
        assert cells["NODE"] == live.ranks()[int(rank)].node
        assert cells["STATE"] == "running"
        for column in ("STEPS", "DONE", "STEP/s", "LAG", "COMM", "AR-BW/s"):
            check_figure(cells[column], sampler.values(f"r{rank}/{column}"), f"r{rank} {column}")
    assert slowest in {row[0] for row in ranks}

    alerts_line = next(line for line in lines if line.startswith("alerts: "))
    firing = alerts_line.split()[1]
    check_figure("0" if firing == "none" else firing, sampler.values("alerts"), "alerts")
    assert sampler.values("watchdog") and max(sampler.values("watchdog")) == 1
    assert alerts_line.endswith("alerting pipeline alive")
    assert "Watchdog" not in frame


def test_status_shows_the_same_node_figures_and_not_the_watchdog(live):
    assert live.firing("Watchdog"), "the Watchdog fires in the live stack"
    exprs = {k: v for k, v in _expressions(live).items() if "/" in k and k.startswith("mini-")}
    sampler = Sampler(live.prometheus, exprs)
    sampler.start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "minicluster", "status", "--config", str(live.config_file)],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": str(WIDTH)},
            timeout=120,
        )
    finally:
        sampler.stop()
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    print(done.stdout)
    header = next(line for line in lines if line.startswith("NODE")).split()
    for row in _rows(lines, "NODE"):
        cells = dict(zip(header, row, strict=True))
        node = cells["NODE"]
        assert cells["EXP"] == "up"
        for column in ("CPU", "MEM", "PRES", "GPU", "RX/s", "TX/s", "RTT"):
            check_figure(cells[column], sampler.values(f"{node}/{column}"), f"{node} {column}")
    assert [line for line in lines if "Watchdog" in line] == [
        "alerting pipeline alive (Watchdog firing)"
    ]
