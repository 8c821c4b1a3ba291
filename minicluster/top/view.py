"""Draw a Snapshot to fit a terminal: one line per node, per rank and per alert, never
wrapped (cells are cut with an ellipsis), and when the rows do not fit the height, the
longest section is summarised ("… 3 more nodes, all up") until they do.

Every figure is a plain token without spaces, so a script can split a line on blanks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.console import Group
from rich.table import Table
from rich.text import Text

from minicluster.top.queries import PRESSURE_NAMES, JobFigures, NodeFigures, Snapshot

NODE_COLUMNS = ("NODE", "EXP", "CPU", "MEM", "PRES", "GPU", "RX/s", "TX/s", "LINK", "UTIL", "RTT")
RANK_COLUMNS = ("RANK", "NODE", "STEPS", "DONE", "STEP/s", "LAG", "COMM", "AR-BW/s", "STATE")
MISSING = "-"


# --- figures as text ------------------------------------------------------------------------


def percent(ratio: float | None) -> str:
    return MISSING if ratio is None else f"{ratio * 100:.0f}%"


def si(value: float | None) -> str:
    """Bytes (or bytes/s) with an SI suffix and three significant digits: 950, 12.3k, 1.23G."""
    if value is None:
        return MISSING
    for suffix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale * 0.9995:
            scaled = value / scale
            digits = 2 if abs(scaled) < 10 else (1 if abs(scaled) < 100 else 0)
            return f"{scaled:.{digits}f}{suffix}"
    return f"{value:.0f}"


def milliseconds(seconds: float | None) -> str:
    if seconds is None:
        return MISSING
    ms = seconds * 1000
    return f"{ms:.2f}ms" if ms < 10 else (f"{ms:.1f}ms" if ms < 100 else f"{ms:.0f}ms")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return MISSING
    seconds = max(0, round(seconds))
    if seconds >= 3600:  # to the nearest minute
        hours, minutes = divmod(round(seconds / 60), 60)
        return f"{hours}h{minutes:02d}m"
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def rate(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def count(value: float | None) -> str:
    return MISSING if value is None else f"{value:.0f}"


def link(node: NodeFigures) -> str:
    if node.link_speed:
        return si(node.link_speed)
    return node.link_kind or MISSING


def pressure(level: int | None) -> str:
    return MISSING if level is None else PRESSURE_NAMES.get(level, str(level))


def exporter(up: bool | None) -> str:
    return "?" if up is None else ("up" if up else "DOWN")


def peer_rtt(node: NodeFigures) -> str:
    return "DOWN" if node.peers_down else milliseconds(node.peer_rtt)


def node_row(node: NodeFigures) -> tuple[str, ...]:
    return (
        node.name,
        exporter(node.up),
        percent(node.cpu),
        percent(node.memory_used),
        pressure(node.pressure),
        percent(node.gpu),
        si(node.receive),
        si(node.transmit),
        link(node),
        percent(node.link_utilisation),
        peer_rtt(node),
    )


def job_title(job: JobFigures) -> str:
    parts = [f"job {job.job_id}"]
    slowest = job.slowest
    if job.progress is not None and slowest is not None:
        parts.append(f"{percent(job.progress)} {count(slowest.steps)}/{count(slowest.target)}")
    parts.append(f"ETA {duration(job.eta)}" if job.running else "ended")
    parts.append(f"comm {percent(job.comm_fraction)}")
    if slowest is not None and len(job.ranks) > 1:
        parts.append(f"slowest r{slowest.rank} lag {count(slowest.lag)}")
    return "  ".join(parts)


def rank_row(job: JobFigures, index: int) -> tuple[str, ...]:
    r = job.ranks[index]
    done = r.steps / r.target if r.steps is not None and r.target else None
    return (
        str(r.rank),
        r.node,
        count(r.steps),
        percent(done),
        rate(r.steps_rate),
        count(r.lag),
        percent(r.comm_fraction),
        si(r.busbw),
        r.state,
    )


# --- fitting the height -----------------------------------------------------------------------


@dataclass
class _Section:
    """Rows in display order, their priority order for when only some fit, and a summary
    of the rows left out."""

    rows: int
    priority: list[int]
    summary: Callable[[list[int]], str]
    allotted: int = 0

    def shown(self) -> tuple[list[int], str | None]:
        if self.allotted >= self.rows:
            return list(range(self.rows)), None
        keep = max(0, self.allotted - 1)  # the summary line takes a row
        chosen = sorted(self.priority[:keep])
        left_out = [i for i in range(self.rows) if i not in chosen]
        return chosen, self.summary(left_out)


def _fit(sections: Sequence[_Section], budget: int | None) -> None:
    for section in sections:
        section.allotted = section.rows
    if budget is None:
        return
    while sum(s.allotted for s in sections) > budget:
        largest = max(sections, key=lambda s: s.allotted)
        if largest.allotted <= 1:
            break
        largest.allotted -= 1


NAME_WIDTH = 14
# Columns given up first when a terminal is too narrow for all of them: a figure is
# dropped whole rather than squeezed into a misleading "5…".
NODE_DROP_ORDER = ("UTIL", "GPU", "PRES", "RTT", "LINK", "TX/s", "RX/s", "MEM")
RANK_DROP_ORDER = ("AR-BW/s", "DONE", "STATE", "COMM", "LAG", "NODE")


def _table(
    columns: Sequence[str],
    rows: Sequence[tuple[tuple[str, ...], str | None]],
    left: set[str],
    drop_order: Sequence[str],
    width: int | None,
) -> Table:
    """A borderless table of `rows` (cells, style) with the columns that fit `width`."""

    def needed(shown: list[int]) -> int:
        widths = [
            min(
                max([len(columns[i]), *(len(cells[i]) for cells, _ in rows)]),
                NAME_WIDTH if columns[i] == "NODE" else 10**6,
            )
            for i in shown
        ]
        return sum(widths) + 2 * (len(widths) - 1)  # one blank each side between columns

    shown = list(range(len(columns)))
    for name in drop_order:
        if width is None or needed(shown) <= width:
            break
        shown.remove(columns.index(name))
    table = Table(box=None, pad_edge=False, padding=(0, 1), header_style="bold", expand=False)
    for i in shown:
        table.add_column(
            columns[i],
            justify="left" if columns[i] in left else "right",
            no_wrap=True,
            overflow="ellipsis",
            max_width=NAME_WIDTH if columns[i] == "NODE" else None,
        )
    for cells, style in rows:
        table.add_row(*(cells[i] for i in shown), style=style)
    return table


def node_table(nodes: Sequence[NodeFigures], width: int | None = None) -> Table:
    """One row per node, the columns that fit `width` (all of them for None)."""
    rows = [(node_row(node), None if node.up else "red") for node in nodes]
    left = {"NODE", "EXP", "PRES", "LINK"}
    return _table(NODE_COLUMNS, rows, left, NODE_DROP_ORDER, width)


def _line(text: str, style: str | None = None) -> Text:
    return Text(text, style=style or "", no_wrap=True, overflow="ellipsis")


def _node_section(nodes: Sequence[NodeFigures]) -> _Section:
    def trouble(i: int) -> bool:
        return nodes[i].up is not True or nodes[i].peers_down > 0

    priority = sorted(range(len(nodes)), key=lambda i: (not trouble(i), i))

    def summary(left_out: list[int]) -> str:
        down = sum(1 for i in left_out if nodes[i].up is not True)
        state = f"{down} not up" if down else "all up"
        return f"… {len(left_out)} more nodes, {state}"

    return _Section(len(nodes), priority, summary)


def _rank_section(job: JobFigures) -> _Section:
    ranks = job.ranks
    priority = sorted(
        range(len(ranks)), key=lambda i: (ranks[i].up, -(ranks[i].lag or 0), ranks[i].rank)
    )

    def summary(left_out: list[int]) -> str:
        return f"… {len(left_out)} more ranks"

    return _Section(len(ranks), priority, summary)


def render(
    snapshot: Snapshot | None,
    *,
    url: str,
    height: int | None = None,
    width: int | None = None,
    interval: float | None = None,
    error: str | None = None,
) -> Group:
    """The frame. `height` None prints every row; `width` drops the columns that do not
    fit (None keeps all); `interval` adds the refresh
    and key hint of the live view; `error` is why the last refresh failed."""
    clock = time.strftime("%H:%M:%S", time.localtime(snapshot.at if snapshot else time.time()))
    title = f"minicluster top  {url}  {clock}"
    if interval is not None:
        title += f"  every {interval:g}s  q quits"
    parts: list = [_line(title, "bold reverse")]
    if error:
        parts.append(_line(error, "bold red"))
        if interval is not None:
            shown = f"; the figures below are from {clock}" if snapshot else ""
            parts.append(_line(f"retrying every {interval:g}s{shown}", "red"))
    if snapshot is None:
        return Group(*parts)

    jobs = [job for job in snapshot.jobs if job.ranks]
    alerts = snapshot.alerts
    node_section = _node_section(snapshot.nodes)
    rank_sections = [_rank_section(job) for job in jobs]
    alert_section = _Section(
        len(alerts), list(range(len(alerts))), lambda left: f" … {len(left)} more alerts"
    )
    fixed = len(parts) + 1 + (2 * len(jobs) if jobs else 1) + 1
    _fit(
        [node_section, *rank_sections, alert_section],
        None if height is None else height - fixed,
    )

    chosen, summary = node_section.shown()
    parts.append(node_table([snapshot.nodes[i] for i in chosen], width))
    if summary:
        parts.append(_line(summary, "dim"))

    if not jobs:
        parts.append(_line("no job running (no trainer ranks discovered)", "dim"))
    for job, section in zip(jobs, rank_sections, strict=True):
        parts.append(_line(job_title(job), "bold"))
        chosen, summary = section.shown()
        rows = [(rank_row(job, i), "red" if job.ranks[i].state == "DOWN" else None) for i in chosen]
        parts.append(_table(RANK_COLUMNS, rows, {"NODE", "STATE"}, RANK_DROP_ORDER, width))
        if summary:
            parts.append(_line(summary, "dim"))

    pipeline = (
        "alerting pipeline alive"
        if snapshot.watchdog
        else "alerting pipeline SILENT (Watchdog not firing)"
    )
    parts.append(
        _line(
            f"alerts: {len(alerts) or 'none'} firing  {pipeline}",
            "bold" if snapshot.watchdog else "bold red",
        )
    )
    chosen, summary = alert_section.shown()
    for i in chosen:
        alert = alerts[i]
        style = "red" if alert.severity == "critical" else "yellow"
        parts.append(_line(f" {alert.severity[:4]:<4} {alert.name}  {alert.where}", style))
    if summary:
        parts.append(_line(summary, "dim"))
    return Group(*parts)
