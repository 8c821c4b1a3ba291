"""The report page: one HTML file, inline CSS, plots as data: URIs, no script, no fetch.

Nothing on the page refers to anything outside it (the favicon too is an empty data:
URI, else a browser asks the server or the file system for /favicon.ico), so it opens
the same from a mail attachment, a USB stick or a machine with no network.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from minicluster.report.figures import data_uri, human_bytes

STYLE = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: #1d1d1f; max-width: 1040px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.8em; }
.meta { color: #555; } .note { color: #555; font-size: 0.92em; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.8em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.92em; }
.status-ok { color: #1a7f37; } .status-bad { color: #cf222e; }
"""


@dataclass(frozen=True)
class Plot:
    key: str
    title: str
    caption: str
    png: bytes
    series: int  # how many series it draws (0: the plot says there was no data)


@dataclass(frozen=True)
class AlertRow:
    name: str
    severity: str
    labels: str
    first: float
    last: float


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def summary_rows(summary: dict) -> list[tuple[str, str]]:
    """The run-job summary in words and units."""
    if not summary:
        return []
    rows = [("wall time", f"{summary.get('wall_seconds', 0):.1f} s (launch to exit)")]
    rows.append(("ranks reported", f"{summary.get('ranks_reported')}/{summary.get('world_size')}"))
    if "steps" not in summary:
        return rows
    rows.append(("steps", f"{summary['steps']}/{summary.get('target_steps')}"))
    sps = summary.get("samples_per_second")
    rows.append(("samples/s", f"{sps:.1f}" if sps else "n/a"))
    rows.append(("samples", f"{summary.get('samples')} in {summary.get('train_seconds')} s"))
    phases = summary.get("phase_seconds_per_step") or {}
    rows.append(
        (
            "step time",
            f"{summary.get('step_seconds', 0) * 1000:.2f} ms = "
            + ", ".join(f"{p} {s * 1000:.2f} ms" for p, s in phases.items() if s),
        )
    )
    fraction = summary.get("comm_fraction")
    rows.append(("communication fraction", f"{fraction:.1%}" if fraction is not None else "n/a"))
    busbw = summary.get("allreduce_busbw_bytes_per_second")
    link = summary.get("link_speed_bytes_per_second")
    bandwidth = human_bytes(busbw, per_second=True) if busbw else "n/a"
    if link and summary.get("busbw_link_ratio") is not None:
        bandwidth += (
            f" = {summary['busbw_link_ratio']:.1%} of the link's "
            f"{human_bytes(link, per_second=True)}"
        )
    rows.append(
        (
            "all-reduce",
            f"{summary.get('allreduce_calls')} calls, "
            f"{human_bytes(summary.get('allreduce_bytes') or 0)} per rank, "
            f"bus bandwidth {bandwidth}",
        )
    )
    rows.append(("restarts", _fmt(summary.get("restarts"))))
    loss = summary.get("final_loss")
    rows.append(("final loss", f"{loss:.4f}" if isinstance(loss, int | float) else "n/a"))
    return rows


def _table(head: list[str], rows: list[list[str]], numeric_from: int = 99) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        cells = "".join(
            f'<td class="num">{escape(c)}</td>' if i >= numeric_from else f"<td>{escape(c)}</td>"
            for i, c in enumerate(row)
        )
        out.append(f"<tr>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def render_html(
    *,
    job_id: str,
    record: dict | None,
    window: tuple[float, float],
    prometheus_url: str,
    plots: list[Plot],
    totals_head: list[str],
    totals: list[list[str]],
    alerts: list[AlertRow],
    generated_at: float,
) -> str:
    record = record or {}
    status = record.get("status", "unknown (no runs/<job_id>.json)")
    status_class = "status-ok" if record.get("exit_code") == 0 else "status-bad"
    nodes = ", ".join(record.get("nodes", [])) or "n/a"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>minicluster job {escape(job_id)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Job {escape(job_id)}</h1>",
        f'<p class="meta">status <b class="{status_class}">{escape(str(status))}</b>'
        f" &middot; cluster {escape(str(record.get('cluster', 'n/a')))}"
        f" &middot; nodes {escape(nodes)}<br>"
        f"{escape(_time(window[0]))} to {escape(_time(window[1]))}"
        f" ({window[1] - window[0]:.0f} s) &middot; data from Prometheus at "
        f"{escape(prometheus_url)}</p>",
        "<h2>Summary</h2>",
    ]
    rows = summary_rows(record.get("summary") or {})
    if rows:
        parts.append(_table(["", ""], [[k, v] for k, v in rows]))
    else:
        parts.append('<p class="note">No run-job summary for this job.</p>')
    parts.append("<h3>Per rank, at the end of the job (from Prometheus)</h3>")
    if totals:
        parts.append(_table(totals_head, totals, numeric_from=2))
    else:
        parts.append('<p class="note">Prometheus has no trainer series for this job.</p>')
    for plot in plots:
        parts += [
            f'<h2 id="{escape(plot.key)}">{escape(plot.title)}</h2>',
            "<figure>",
            f'<img src="{data_uri(plot.png)}" alt="{escape(plot.title)}" '
            f'data-series="{plot.series}">',
            f"<figcaption>{escape(plot.caption)}</figcaption>",
            "</figure>",
        ]
    parts.append("<h2>Alerts that fired</h2>")
    if alerts:
        parts.append(
            _table(
                ["alert", "severity", "labels", "first seen", "last seen"],
                [[a.name, a.severity, a.labels, _time(a.first), _time(a.last)] for a in alerts],
            )
        )
        if any(a.name == "Watchdog" for a in alerts):
            parts.append(
                '<p class="note">Watchdog always fires: it shows that the alerting '
                "pipeline was working during the job.</p>"
            )
    else:
        parts.append('<p class="note">No alert fired during the job.</p>')
    parts.append(
        f'<p class="note">Made by <code>minicluster report {escape(job_id)}</code> at '
        f"{escape(_time(generated_at))}.</p></body></html>"
    )
    return "\n".join(parts) + "\n"
