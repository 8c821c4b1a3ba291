"""`minicluster report` on canned Prometheus answers: the page's numbers, its plots and
that it needs nothing outside itself."""

from __future__ import annotations

import base64
import json
import re
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest

from minicluster.core.promapi import Series
from minicluster.report.build import ReportRequest, build_report
from minicluster.report.job import ReportError

START = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC).timestamp()
END = START + 60
PHASES = {"data": 0.001, "forward": 0.004, "backward": 0.008, "comm": 0.003, "optimizer": 0.002}


def ramp(start: float, end: float, step: float, value) -> tuple[list[float], list[float]]:
    times, t = [], start
    while t <= end:
        times.append(t)
        t += step
    return times, [value(t) for t in times]


class CannedPrometheus:
    """Answers the report's queries with series for a 2-rank job on two nodes."""

    def __init__(self, job_id: str, has_job: bool = True) -> None:
        self.job_id, self.has_job = job_id, has_job
        self.ranges: list[tuple[str, float, float, float]] = []
        self.instants: list[tuple[str, float]] = []

    def _ranks(self, start, end, step, value) -> list[Series]:
        times, _ = ramp(start, end, step, lambda t: 0)
        return [
            Series(
                {"rank": str(r), "node": node, "job_id": self.job_id},
                times,
                [value(r, t) for t in times],
            )
            for r, node in ((0, "mini-red"), (1, "mini-yellow"))
        ]

    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        self.ranges.append((query, start, end, step))
        if not self.has_job:
            return []
        if query.startswith("count(trainer_steps_total"):
            times, values = ramp(START, END, step, lambda t: 2)
            return [Series({}, times, values)]
        if "trainer_samples_total" in query:
            return self._ranks(start, end, step, lambda r, t: 100.0 + r)
        if query.startswith("trainer_loss"):
            return self._ranks(start, end, step, lambda r, t: 2.0 - (t - start) / 100)
        if "trainer_phase_seconds_total" in query:
            times, _ = ramp(start, end, step, lambda t: 0)
            return [Series({"phase": p}, times, [v] * len(times)) for p, v in PHASES.items()]
        if "trainer_allreduce_bytes_total" in query:
            times, _ = ramp(start, end, step, lambda t: 0)
            return [
                Series({"node": n}, times, [2e6] * len(times)) for n in ("mini-red", "mini-yellow")
            ]
        if "node_network_transmit_bytes_total" in query:
            times, _ = ramp(start, end, step, lambda t: 0)
            return [
                Series({"node": n, "device": "lo"}, times, [3e6] * len(times))
                for n in ("mini-red", "mini-yellow")
            ]
        if query in (
            'avg by (node) (node:cpu_utilisation:ratio{job="node"})',
            'node:memory_available:ratio{job="node"}',
        ):
            times, _ = ramp(start, end, step, lambda t: 0)
            return [
                Series({"node": n}, times, [0.5] * len(times)) for n in ("mini-red", "mini-yellow")
            ]
        if query.startswith("ALERTS"):
            return [
                Series({"alertname": "Watchdog", "severity": "none"}, [start, end], [1, 1]),
                Series(
                    {"alertname": "TrainerStalled", "severity": "warning", "rank": "1"},
                    [START + 30, START + 45],
                    [1, 1],
                ),
            ]
        raise AssertionError(f"unexpected query {query}")

    def query(self, query: str, at: float) -> list[Series]:
        self.instants.append((query, at))
        metric = re.match(r"last_over_time\((\w+)\{", query).group(1)
        values = {
            "trainer_steps_total": 100,
            "trainer_samples_total": 3200,
            "trainer_allreduce_bytes_total": 91980800,
            "trainer_loss": 0.25,
        }
        return [
            Series({"rank": str(r), "node": n}, [at], [float(values.get(metric, 0))])
            for r, n in ((0, "mini-red"), (1, "mini-yellow"))
        ]


def write_run_record(runs: Path, job_id: str) -> None:
    runs.mkdir(parents=True, exist_ok=True)
    record = {
        "job_id": job_id,
        "status": "succeeded",
        "exit_code": 0,
        "started_at": datetime.fromtimestamp(START, UTC).isoformat(timespec="milliseconds"),
        "finished_at": datetime.fromtimestamp(END, UTC).isoformat(timespec="milliseconds"),
        "cluster": "local",
        "nodes": ["mini-red", "mini-yellow"],
        "summary": {
            "ranks_reported": 2,
            "world_size": 2,
            "target_steps": 100,
            "wall_seconds": 60.0,
            "steps": 100,
            "samples": 6400,
            "train_seconds": 20.0,
            "samples_per_second": 320.0,
            "step_seconds": 0.018,
            "phase_seconds_per_step": PHASES,
            "comm_fraction": 1 / 6,
            "allreduce_calls": 100,
            "allreduce_bytes": 91980800,
            "allreduce_seconds": 0.3,
            "allreduce_busbw_bytes_per_second": 306602666.0,
            "link_speed_bytes_per_second": None,
            "busbw_link_ratio": None,
            "restarts": 0,
            "final_loss": 0.25,
        },
    }
    (runs / f"{job_id}.json").write_text(json.dumps(record))


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def images(html: str) -> list[tuple[str, bytes, int]]:
    found = re.findall(
        r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)" data-series="(\d+)">', html
    )
    return [(alt, base64.b64decode(data), int(series)) for data, alt, series in found]


def test_report_plots_every_panel_and_tells_the_summary(tmp_path: Path) -> None:
    job_id = "20261128-120000-abcdef"
    write_run_record(tmp_path / "runs", job_id)
    prom = CannedPrometheus(job_id)
    request = ReportRequest(
        job_id,
        "http://127.0.0.1:1",
        tmp_path / "out" / "r.html",
        tmp_path / "runs",
        scrape_interval_seconds=5,
        interfaces={"mini-red": "lo", "mini-yellow": "lo"},
        overview_png=tmp_path / "overview.png",
    )
    path = build_report(request, prom)
    html = path.read_text()

    plots = images(html)
    assert [alt for alt, _, _ in plots] == [
        "Throughput per rank",
        "Loss",
        "Step time by phase",
        "All-reduce bytes against NIC bytes",
        "Node CPU",
        "Node memory available",
    ]
    assert [series for _, _, series in plots] == [2, 2, len(PHASES), 4, 2, 2]
    for _, png, _ in plots:
        assert png_size(png) == (800, 290)
    # Self-contained: every src/href is a data: URI; no script.
    for attribute in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert attribute.startswith("data:"), attribute
    assert "<script" not in html

    # The window is the record's, padded by two scrape intervals; all trainer queries are
    # for this job only, and the training interface is the configured one.
    trainer_queries = [q for q, *_ in prom.ranges if "trainer_" in q]
    assert trainer_queries and all(f'job_id="{job_id}"' in q for q in trainer_queries)
    assert any('device=~"lo"' in q for q, *_ in prom.ranges)
    query, start, end, step = prom.ranges[0]
    assert (start, end) == (START - 10, END + 10)
    assert step == 1.0
    assert "[20s]" in query  # the rate window: four 5 s scrapes (more than two 1 s steps)
    # Node CPU is the recording rule's figure, not a copy of its expression.
    assert not any("node_cpu_seconds_total" in q for q, *_ in prom.ranges)

    assert "<td>steps</td><td>100/100</td>" in html
    assert "<td>samples/s</td><td>320.0</td>" in html
    assert "<td>communication fraction</td><td>16.7%</td>" in html
    assert "306.60 MB/s" in html
    # Per-rank totals from Prometheus.
    assert '<td>0</td><td>mini-red</td><td class="num">100</td><td class="num">3200</td>' in html
    # Alerts: the real one first, the Watchdog last with its note.
    stalled, watchdog = html.index("<td>TrainerStalled</td>"), html.index("<td>Watchdog</td>")
    assert stalled < watchdog
    assert "2026-11-28 12:00:30 UTC" in html and "2026-11-28 12:00:45 UTC" in html
    # The one-picture overview: four panels in a 2x2 grid, 12 x 6 inches at 100 dpi.
    assert png_size((tmp_path / "overview.png").read_bytes()) == (1200, 600)
    # run-job's record now points at the report.
    record = json.loads((tmp_path / "runs" / f"{job_id}.json").read_text())
    assert record["report"] == str(path) and record["summary"]["steps"] == 100


def test_report_without_run_record_finds_the_job_in_prometheus(tmp_path: Path) -> None:
    job_id = "hand-started"
    prom = CannedPrometheus(job_id)
    request = ReportRequest(
        job_id,
        "http://127.0.0.1:1",
        tmp_path / "r.html",
        tmp_path / "runs",
        scrape_interval_seconds=5,
        lookback_seconds=3600,
    )
    html = build_report(request, prom).read_text()
    first = prom.ranges[0]
    assert first[0] == f'count(trainer_steps_total{{job="trainer", job_id="{job_id}"}})'
    assert first[2] - first[1] == 3600
    assert "unknown (no runs/&lt;job_id&gt;.json)" in html
    assert "No run-job summary for this job." in html
    assert len(images(html)) == 6
    assert not (tmp_path / "runs").exists()


def test_report_of_an_unknown_job_says_where_it_looked(tmp_path: Path) -> None:
    prom = CannedPrometheus("nope", has_job=False)
    request = ReportRequest(
        "nope", "http://127.0.0.1:1", tmp_path / "r.html", tmp_path / "runs", lookback_seconds=7200
    )
    with pytest.raises(ReportError, match=r"no trainer series with that job_id .* last 2 h"):
        build_report(request, prom)
    assert not (tmp_path / "r.html").exists()
