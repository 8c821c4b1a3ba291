"""The frame fits the terminal: 80 columns, 24 rows, never wrapped; more nodes, ranks and
alerts than fit are summarised, and the ones in trouble stay visible."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from rich.console import Console

from minicluster.top.queries import Alert, JobFigures, NodeFigures, RankFigures, Snapshot
from minicluster.top.view import duration, milliseconds, render, si
from tests.support import free_port
from tests.top.figures import parse

URL = "http://127.0.0.1:9090"


def _frame(snapshot: Snapshot | None, width: int, height: int | None, **kw) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, legacy_windows=False)
    console.print(render(snapshot, url=URL, height=height, width=width, **kw))
    return out.getvalue().splitlines()


def _cluster(nodes: int, ranks: int, alerts: int) -> Snapshot:
    node_figures = tuple(
        NodeFigures(
            name=f"mini-{i:02d}-with-a-long-name",
            role="master" if i == 0 else "worker",
            interface="bridge0",
            up=i != 17,
            cpu=0.5,
            memory_used=0.25,
            pressure=1,
            gpu=0.9,
            receive=1.5e9,
            transmit=2.5e9,
            link_speed=5e9,
            peer_rtt=0.0004,
        )
        for i in range(nodes)
    )
    rank_figures = tuple(
        RankFigures(
            rank=r,
            node=f"mini-{r % nodes:02d}",
            up=True,
            steps=1000 - (30 if r == 11 else 0),
            target=5000,
            steps_rate=12.25,
            lag=30 if r == 11 else 0,
            comm_fraction=0.31,
            busbw=1.2e9,
        )
        for r in range(ranks)
    )
    job = JobFigures("20261201-1500-ab12", rank_figures, eta=4000, comm_fraction=0.3)
    alert_list = tuple(
        Alert(f"NodeCPUSaturated{i}", "warning", {"node": f"mini-{i:02d}"}) for i in range(alerts)
    )
    return Snapshot(URL, 0.0, node_figures, (job,), alert_list, watchdog=True)


def test_a_small_cluster_prints_every_row_within_80_columns():
    lines = _frame(_cluster(nodes=2, ranks=2, alerts=1), width=80, height=24)
    assert all(len(line) <= 80 for line in lines)
    assert len(lines) == 1 + 3 + 1 + 3 + 2
    node = lines[2].split()
    # name, exporter, cpu, mem, pressure, gpu, rx, tx, link, util, rtt
    assert node[1:] == ["up", "50%", "25%", "ok", "90%", "1.50G", "2.50G", "5.00G", "50%", "0.40ms"]
    assert lines[4].startswith("job 20261201-1500-ab12  20% 1000/5000  ETA 1h07m  comm 30%")
    assert lines[-2] == "alerts: 1 firing  alerting pipeline alive"
    assert lines[-1].split() == ["warn", "NodeCPUSaturated0", "node=mini-00"]


@pytest.mark.parametrize("width,height", [(80, 24), (60, 15), (100, 40)])
def test_a_big_cluster_is_summarised_to_fit(width, height):
    snapshot = _cluster(nodes=30, ranks=16, alerts=12)
    lines = _frame(snapshot, width=width, height=height, interval=2)
    assert len(lines) <= height
    assert all(len(line) <= width for line in lines)
    text = "\n".join(lines)
    # mini-17 is down: it is shown, the others summarised.
    assert "more nodes, all up" in text
    assert any(line.startswith("mini-17") and "DOWN" in line.split() for line in lines)
    # No figure is squeezed into an ellipsis; narrow terminals lose whole columns.
    rows = [ln.split() for ln in lines if ln.startswith("mini-") or ln[:4].strip().isdigit()]
    assert rows and not any("…" in cell for row in rows for cell in row[1:])
    assert "more ranks" in text
    rank_rows = [line.split() for line in lines if line.split()[:1] == ["11"]]
    assert rank_rows, "the slowest rank (11, 30 steps behind) is shown"


def test_unreachable_banner_keeps_the_last_figures():
    snapshot = _cluster(nodes=2, ranks=2, alerts=0)
    lines = _frame(snapshot, 80, 24, interval=2, error="Prometheus at X is unreachable (boom)")
    assert lines[1] == "Prometheus at X is unreachable (boom)"
    assert lines[2] == "retrying every 2s; the figures below are from 00:00:00"
    assert any(line.startswith("mini-00") for line in lines)
    first = _frame(None, 80, 24, interval=2, error="Prometheus at X is unreachable (boom)")
    assert first[1:] == ["Prometheus at X is unreachable (boom)", "retrying every 2s"]


def test_silent_alerting_pipeline_is_said():
    snapshot = Snapshot(URL, 0.0, (), (), (), watchdog=False)
    lines = _frame(snapshot, 80, 24)
    assert lines[-1] == "alerts: none firing  alerting pipeline SILENT (Watchdog not firing)"
    assert "no job running" in "\n".join(lines)


@pytest.mark.parametrize(
    "value,text", [(950, "950"), (12_345, "12.3k"), (1.5e9, "1.50G"), (999_999, "1.00M")]
)
def test_si_and_its_reading_back(value, text):
    assert si(value) == text
    read, half = parse(text)
    assert abs(read - value) <= half + 1e-9 * value


def test_durations_and_milliseconds():
    durations = ["0s", "45s", "5m03s", "1h07m", "25h01m", "1h00m"]
    assert [duration(s) for s in (0, 45, 303, 4000, 90061, 3599.6)] == durations
    assert [milliseconds(s) for s in (0.00022, 0.0123, 0.25)] == ["0.22ms", "12.3ms", "250ms"]


def test_once_with_prometheus_unreachable_says_so_and_exits_non_zero():
    closed = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "minicluster", "top", "--local", "--once", "--prometheus", closed],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"minicluster top: Prometheus at {closed} is unreachable (connection refused)"
    ]
