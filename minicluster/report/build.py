"""Build one job's HTML report from Prometheus and runs/<job_id>.json."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from minicluster.core.config import Config
from minicluster.core.promapi import Prometheus, prometheus_client_for
from minicluster.launcher.summary import write_record
from minicluster.report.charts import Line, overview_figure, panel_figure
from minicluster.report.figures import png_bytes, save_png
from minicluster.report.html import AlertRow, Plot, render_html
from minicluster.report.job import (
    JobWindow,
    load_record,
    selector,
    window_from_prometheus,
    window_from_record,
)
from minicluster.report.panels import FIRING_ALERTS, TOTALS, job_panels, rate_window

# About this many points per series: smooth enough, small PNGs.
POINTS = 300
# The panels of the one-picture overview (README picture, sharing a job in a chat).
OVERVIEW = ("throughput", "phases", "network", "cpu")
# Alerts about a job (a rank that went down) may fire a little after it ended.
ALERT_TAIL_SECONDS = 120.0


@dataclass(frozen=True)
class ReportRequest:
    job_id: str
    prometheus_url: str
    out: Path
    runs_dir: Path = Path("runs")
    scrape_interval_seconds: float = 15.0
    interfaces: dict[str, str] = field(default_factory=dict)  # node -> training interface
    lookback_seconds: float = 86400.0
    overview_png: Path | None = None  # also write the main panels as one picture
    # The cluster whose credentials reach prometheus_url (security.tls); None: plain HTTP.
    config: Config | None = None


class _Labels(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def legend(template: str, labels: dict[str, str]) -> str:
    return template.format_map(_Labels(labels))


def _lines(prom: Prometheus, panel, window: JobWindow, step: float) -> list[Line]:
    lines = []
    for query in panel.queries:
        for series in prom.query_range(query.expr, window.start, window.end, step):
            lines.append(Line(legend(query.legend, series.labels), series.times, series.values))
    return sorted(lines, key=lambda line: line.label)


def _totals(prom: Prometheus, job_id: str, window: JobWindow) -> tuple[list[str], list[list[str]]]:
    span = f"{math.ceil(window.seconds)}s"
    by_rank: dict[tuple[int, str], dict[str, float]] = {}
    for metric in TOTALS:
        query = f"last_over_time({metric}{{{selector(job_id)}}}[{span}])"
        for series in prom.query(query, window.end):
            rank = int(series.labels.get("rank", -1))
            by_rank.setdefault((rank, series.labels.get("node", "?")), {})[metric] = series.values[
                0
            ]
    head = ["rank", "node", *TOTALS.values()]
    rows = []
    for (rank, node), values in sorted(by_rank.items()):
        cells = []
        for metric in TOTALS:
            value = values.get(metric)
            if value is None or not math.isfinite(value):
                cells.append("n/a")
            elif metric.endswith("_bytes_total") or float(value).is_integer():
                cells.append(f"{value:.0f}")
            else:
                cells.append(f"{value:.4g}")
        rows.append([str(rank), node, *cells])
    return head, rows


def _alerts(prom: Prometheus, window: JobWindow, step: float, now: float) -> list[AlertRow]:
    end = min(now, window.end + ALERT_TAIL_SECONDS)
    rows = []
    for series in prom.query_range(FIRING_ALERTS, window.start, end, step):
        labels = {
            k: v
            for k, v in series.labels.items()
            if k not in ("__name__", "alertname", "alertstate", "severity", "cluster")
        }
        rows.append(
            AlertRow(
                name=series.labels.get("alertname", "?"),
                severity=series.labels.get("severity", ""),
                labels=", ".join(f"{k}={v}" for k, v in sorted(labels.items())),
                first=min(series.times),
                last=max(series.times),
            )
        )
    # Real problems first; the always-firing Watchdog last.
    return sorted(rows, key=lambda a: (a.name == "Watchdog", a.first, a.name))


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def build_report(request: ReportRequest, prom: Prometheus | None = None) -> Path:
    # Range queries over hours need the longer timeout.
    prom = prom or prometheus_client_for(
        request.config, url_override=request.prometheus_url, timeout=10.0
    )
    now = time.time()
    record = load_record(request.runs_dir, request.job_id)
    job = (window_from_record(record) if record else None) or window_from_prometheus(
        prom, request.job_id, request.lookback_seconds, now
    )
    pad = 2 * request.scrape_interval_seconds
    shown = job.padded(pad, pad)
    step = max(1.0, math.ceil(shown.seconds / POINTS))
    window = rate_window(request.scrape_interval_seconds, step)
    plots, queried = [], []
    for panel in job_panels(request.job_id, window, request.interfaces):
        lines = _lines(prom, panel, shown, step)
        queried.append((panel, lines))
        figure = panel_figure(panel, lines, job)
        drawn = sum(1 for line in lines if any(math.isfinite(v) for v in line.values))
        plots.append(Plot(panel.key, panel.title, panel.caption, png_bytes(figure), drawn))
    if request.overview_png:
        chosen = [(panel, lines) for panel, lines in queried if panel.key in OVERVIEW]
        title = f"minicluster job {request.job_id}"
        save_png(overview_figure(chosen, job, title), request.overview_png)
    totals_head, totals = _totals(prom, request.job_id, shown)
    html = render_html(
        job_id=request.job_id,
        record=record,
        window=(job.start, job.end),
        prometheus_url=request.prometheus_url,
        plots=plots,
        totals_head=totals_head,
        totals=totals,
        alerts=_alerts(prom, shown, step, now),
        generated_at=now,
    )
    _write_atomically(request.out, html)
    if record is not None:
        write_record(request.runs_dir, request.job_id, {"report": str(request.out)})
    return request.out
