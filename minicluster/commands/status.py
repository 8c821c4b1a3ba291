"""`minicluster status`: one screen from Prometheus on the master: nodes and exporters up,
the running jobs' progress and rate per rank, and the firing alerts.

It asks for raw series (`up`, `trainer_*`, `ALERTS`) rather than recording rules, so it
works on a Prometheus whose rules are not loaded yet. The rate per rank is `irate`, the
rate between a rank's last two scrapes: right from a job's second scrape, where `rate()`
over a window divides by the whole window and understates a job younger than it.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.table import Table

from minicluster.commands.args import (
    add_config_arguments,
    add_prometheus_argument,
    config_from_args,
    prometheus_client_from_args,
)
from minicluster.core.config import Config
from minicluster.core.metrics import (
    JOB_FINISHED,
    NODE_JOB,
    STEPS,
    TARGET_STEPS,
    TRAINER_JOB,
    rate_window,
)
from minicluster.core.promapi import Prometheus, PrometheusError, Series
from minicluster.top import view as top_view
from minicluster.top.queries import WATCHDOG, NodeFigures, fetch, window_for

_ALERT_LABELS_SHOWN_APART = ("alertname", "alertstate", "severity", "__name__")


@dataclass
class RankStatus:
    job_id: str
    rank: int
    node: str
    up: bool = False
    steps: float | None = None
    target: float | None = None
    rate: float | None = None  # steps/s between the last two scrapes
    finished: bool = False


@dataclass
class ClusterStatus:
    url: str
    nodes: list[tuple[str, str, bool | None]] = field(default_factory=list)  # name, role, up
    targets: dict[str, tuple[int, int]] = field(default_factory=dict)  # scrape job: (up, all)
    jobs: dict[str, list[RankStatus]] = field(default_factory=dict)
    alerts: list[dict[str, str]] = field(default_factory=list)
    figures: dict[str, NodeFigures] = field(default_factory=dict)  # node -> what `top` shows
    watchdog: bool = False  # the always-firing heartbeat fires: alerts reach Alertmanager


def _by_rank(samples: list[Series]) -> dict[tuple[str, int], Series]:
    keyed = {}
    for sample in samples:
        labels = sample.labels
        if "job_id" in labels and labels.get("rank", "").isdigit():
            keyed[(labels["job_id"], int(labels["rank"]))] = sample
    return keyed


def collect(prom: Prometheus, config: Config) -> ClusterStatus:
    status = ClusterStatus(prom.base_url)
    up = prom.query("up")
    node_up = {s.labels.get("node"): s.value == 1 for s in up if s.labels.get("job") == NODE_JOB}
    status.nodes = [(n.name, n.role, node_up.get(n.name)) for n in config.nodes]
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for sample in up:
        counts[sample.labels.get("job", "?")][0] += int(sample.value == 1)
        counts[sample.labels.get("job", "?")][1] += 1
    status.targets = {job: (c[0], c[1]) for job, c in sorted(counts.items())}

    ranks: dict[tuple[str, int], RankStatus] = {}
    for (job_id, rank), sample in _by_rank(
        [s for s in up if s.labels.get("job") == TRAINER_JOB]
    ).items():
        ranks[(job_id, rank)] = RankStatus(
            job_id, rank, sample.labels.get("node", "?"), up=sample.value == 1
        )
    # The rules' window holds two scrapes even when one failed.
    window = rate_window(config.prometheus.scrape_interval_seconds)
    queries = {
        "steps": STEPS,
        "target": TARGET_STEPS,
        "rate": f"irate({STEPS}[{window}])",
        "finished": JOB_FINISHED,
    }
    for attribute, expr in queries.items():
        for key, sample in _by_rank(prom.query(expr)).items():
            if key not in ranks:
                continue  # a rank no longer discovered (its job is over)
            value = sample.value == 1 if attribute == "finished" else sample.value
            setattr(ranks[key], attribute, value)
    for key in sorted(ranks, reverse=True):  # job ids sort by start time: newest first
        status.jobs.setdefault(key[0], []).append(ranks[key])
    for ranks_of_job in status.jobs.values():
        ranks_of_job.sort(key=lambda r: r.rank)

    firing = prom.query('ALERTS{alertstate="firing"}')
    status.alerts = sorted(
        (s.labels for s in firing if s.labels.get("alertname") != WATCHDOG),
        key=lambda labels: (labels.get("alertname", ""), str(labels)),
    )
    snapshot = fetch(prom.vector, prom.base_url, config, window_for(config))
    status.figures = {node.name: node for node in snapshot.nodes}
    status.watchdog = snapshot.watchdog
    return status


def _job_view(job_id: str, ranks: list[RankStatus]) -> Group:
    known = [r for r in ranks if r.steps is not None and r.target]
    title = f"job {job_id}"
    if known:
        slowest = min(known, key=lambda r: r.steps or 0)
        done = (slowest.steps or 0) / (slowest.target or 1)
        title += f": {done:.0%} ({slowest.steps:.0f}/{slowest.target:.0f} steps, slowest rank)"
        rates = [r.rate for r in known if r.rate]
        if rates and done < 1:
            eta = ((slowest.target or 0) - (slowest.steps or 0)) / min(rates)
            title += f", ETA {eta:.0f} s"
    table = Table()
    for column in ("rank", "node", "up", "steps", "progress", "steps/s", "state"):
        table.add_column(column, justify="right" if column not in ("node", "state") else "left")
    for r in ranks:
        progress = f"{r.steps / r.target:.0%}" if r.steps is not None and r.target else "-"
        state = "finished" if r.finished else ("running" if r.up else "DOWN")
        table.add_row(
            str(r.rank),
            r.node,
            "yes" if r.up else "NO",
            f"{r.steps:.0f}" if r.steps is not None else "-",
            progress,
            f"{r.rate:.2f}" if r.rate is not None else "-",
            state,
            style=None if r.up else "red",
        )
    return Group(title, table)


def render(status: ClusterStatus) -> Group:
    # The node figures `top` shows; EXP "?" is an exporter Prometheus does not scrape.
    nodes = top_view.node_table(
        [status.figures.get(n) or NodeFigures(n, role, "?", up) for n, role, up in status.nodes]
    )
    targets = ", ".join(f"{job} {up}/{total} up" for job, (up, total) in status.targets.items())
    parts: list = [f"Prometheus {status.url}", f"targets: {targets or 'none'}", nodes]
    if status.jobs:
        parts += [_job_view(job_id, ranks) for job_id, ranks in status.jobs.items()]
    else:
        parts.append("no trainer ranks discovered (no job running)")
    if status.alerts:
        alerts = Table()
        for column in ("alert", "severity", "labels"):
            alerts.add_column(column)
        for labels in status.alerts:
            rest = {k: v for k, v in labels.items() if k not in _ALERT_LABELS_SHOWN_APART}
            alerts.add_row(
                labels.get("alertname", "?"),
                labels.get("severity", "-"),
                " ".join(f"{k}={v}" for k, v in sorted(rest.items())),
            )
        parts += [f"firing alerts: {len(status.alerts)}", alerts]
    else:
        parts.append("firing alerts: none")
    parts.append(
        "alerting pipeline alive (Watchdog firing)"
        if status.watchdog
        else "alerting pipeline SILENT: the Watchdog alert is not firing"
    )
    return Group(*parts)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status", help="nodes, running job and firing alerts, from Prometheus"
    )
    add_config_arguments(parser)
    add_prometheus_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    prom = prometheus_client_from_args(args, config)
    console = Console(soft_wrap=True)  # long lines stay whole for grep and narrow pipes
    try:
        status = collect(prom, config)
    except PrometheusError as exc:
        Console(stderr=True, soft_wrap=True).print(
            f"minicluster status: {exc}", markup=False, highlight=False
        )
        return 1
    finally:
        prom.close()
    console.print(render(status))
    return 0
