"""Time-series charts of one panel's query results, as matplotlib figures."""

from __future__ import annotations

import math
from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from minicluster.report.figures import PHASE_COLORS, SERIES_COLORS, new_figure
from minicluster.report.job import JobWindow
from minicluster.report.panels import Panel

NO_DATA = "no data in Prometheus for this job"


@dataclass(frozen=True)
class Line:
    label: str
    times: list[float]
    values: list[float]


def _finite(line: Line, origin: float, scale: float) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for t, v in zip(line.times, line.values, strict=True):
        if math.isfinite(v):
            xs.append(t - origin)
            ys.append(v * scale)
    return xs, ys


def _mark_job(ax, job: JobWindow) -> None:
    ax.axvline(0, color="#555555", linestyle=":", linewidth=1)
    ax.axvline(job.seconds, color="#555555", linestyle=":", linewidth=1)


def _stack(lines: list[Line], panel: Panel, origin: float) -> tuple[list[float], list]:
    """Align the series on the union of their timestamps (missing points count as 0)."""
    times = sorted({t for line in lines for t in line.times})
    rows = []
    for line in lines:
        by_time = dict(zip(line.times, line.values, strict=True))
        rows.append(
            [
                by_time.get(t, 0.0) * panel.scale if math.isfinite(by_time.get(t, 0.0)) else 0.0
                for t in times
            ]
        )
    return [t - origin for t in times], rows


def draw_panel(ax, panel: Panel, lines: list[Line], job: JobWindow, legend: str = "right") -> None:
    """One panel's series on `ax`: lines, or stacked areas for the phase breakdown."""
    ax.set_xlabel("seconds since the job started (dotted: start and end)")
    ax.set_ylabel(panel.unit)
    ax.grid(alpha=0.3)
    _mark_job(ax, job)
    drawn = [line for line in lines if any(math.isfinite(v) for v in line.values)]
    if not drawn:
        ax.text(0.5, 0.5, NO_DATA, transform=ax.transAxes, ha="center", va="center")
        return
    origin = job.start
    if panel.stacked:
        rank = {name: i for i, name in enumerate(panel.order)}
        drawn.sort(key=lambda line: rank.get(line.label, len(rank)))
        xs, rows = _stack(drawn, panel, origin)
        colors = [PHASE_COLORS.get(line.label, "#333333") for line in drawn]
        ax.stackplot(xs, rows, labels=[line.label for line in drawn], colors=colors, alpha=0.9)
    else:
        for i, line in enumerate(drawn):
            xs, ys = _finite(line, origin, panel.scale)
            color = SERIES_COLORS[i % len(SERIES_COLORS)]
            ax.plot(xs, ys, label=line.label, color=color, linewidth=1.6, marker=".", ms=3)
    if panel.percent:
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        ax.set_ylim(0, 1.05)
    else:
        ax.set_ylim(bottom=0)
    if legend == "right":
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    else:
        ax.legend(loc="best", frameon=True, framealpha=0.8, fontsize=7)


def panel_figure(panel: Panel, lines: list[Line], job: JobWindow) -> Figure:
    """One panel as a wide plot for the report page (the page has its title)."""
    figure = new_figure(8.0, 2.9)
    draw_panel(figure.add_subplot(), panel, lines, job)
    return figure


def overview_figure(panels: list[tuple[Panel, list[Line]]], job: JobWindow, title: str) -> Figure:
    """Several panels in a grid of two columns, each titled: one picture of a job."""
    rows = math.ceil(len(panels) / 2)
    figure = new_figure(12.0, 3.0 * rows)
    figure.suptitle(title, fontsize=13)
    for index, (panel, lines) in enumerate(panels):
        ax = figure.add_subplot(rows, 2, index + 1)
        ax.set_title(panel.title, loc="left", fontsize=11)
        draw_panel(ax, panel, lines, job, legend="inside")
    return figure
