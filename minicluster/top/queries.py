"""What `top` and `status` ask Prometheus, and the plain dataclasses the answers become.

Node figures come from the node recording rules; job figures from the trainer recording
rules and the ranks' raw counters (the built-in trainer and a user's script instrumented
with `minicluster.track` publish the same names with job="trainer" and a job_id label).
`snapshot_from_answers` is pure: it takes the `result` lists of the queries in `queries()`
and builds a Snapshot, so it is tested on recorded Prometheus answers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from minicluster.core import metrics
from minicluster.core.config import Config

# Recording rules read by name (prometheus/rules/*.yml renders them; tests/top checks that
# every name here is recorded there).
STEPS_RATE = "job_rank:trainer_steps:rate"
ETA = "job:trainer_eta:seconds"
ALLREDUCE_BUSBW = "job_rank:trainer_allreduce_busbw:bytes_per_second"
RECEIVE_RATE = "node_device:network_receive_bytes:rate"
TRANSMIT_RATE = "node_device:network_transmit_bytes:rate"
RECORDING_RULES = (
    metrics.CPU_UTILISATION,
    metrics.MEMORY_AVAILABLE,
    metrics.RANK_COMM_FRACTION,
    metrics.JOB_COMM_FRACTION,
    STEPS_RATE,
    ETA,
    ALLREDUCE_BUSBW,
    RECEIVE_RATE,
    TRANSMIT_RATE,
)

WATCHDOG = "Watchdog"
# macOS memory pressure levels (kern.memorystatus_vm_pressure_level).
PRESSURE_NAMES = {1: "ok", 2: "warn", 4: "crit"}


def queries(window: str = "1m") -> dict[str, str]:
    """Name -> PromQL of every query in a frame. `window` is the recording rules' rate
    window, used for the one rate the rules leave out: loopback traffic (the local
    profile trains over loopback; the rules drop it as never carrying cluster traffic)."""
    node, trainer = metrics.NODE, metrics.TRAINER
    loopback = f'device=~"{"|".join(metrics.LOOPBACK_DEVICES)}"'

    def traffic(rule: str, counter: str) -> str:
        return f"{rule} or rate({counter}{{{node}, {loopback}}}[{window}])"

    return {
        "node_up": f"up{{{node}}}",
        "cpu": metrics.CPU_UTILISATION,
        "memory_used": f"1 - {metrics.MEMORY_AVAILABLE}",
        "pressure": f"minicluster_memory_pressure_level{{{node}}}",
        "gpu": f"max by (node) (minicluster_gpu_utilization_ratio{{{node}}})",
        "receive": traffic(RECEIVE_RATE, "node_network_receive_bytes_total"),
        "transmit": traffic(TRANSMIT_RATE, "node_network_transmit_bytes_total"),
        "link_speed": f"node_network_speed_bytes{{{node}}}",
        "link_kind": f"minicluster_network_link_info{{{node}}}",
        "peer_rtt": f"max by (node) (minicluster_peer_rtt_seconds{{{node}}})",
        "peers_down": f"count by (node) (minicluster_peer_up{{{node}}} == 0)",
        "rank_up": f"up{{{trainer}}}",
        "steps": f"{metrics.STEPS}{{{trainer}}}",
        "target": f"{metrics.TARGET_STEPS}{{{trainer}}}",
        "finished": f"{metrics.JOB_FINISHED}{{{trainer}}}",
        "steps_rate": STEPS_RATE,
        "comm": metrics.RANK_COMM_FRACTION,
        "busbw": ALLREDUCE_BUSBW,
        "eta": ETA,
        "job_comm": metrics.JOB_COMM_FRACTION,
        "alerts": 'ALERTS{alertstate="firing"}',
    }


@dataclass(frozen=True)
class NodeFigures:
    name: str
    role: str
    interface: str
    up: bool | None = None  # the exporter's scrape; None: Prometheus has no such target
    cpu: float | None = None  # busy ratio
    memory_used: float | None = None  # ratio
    pressure: int | None = None  # macOS only: 1 normal, 2 warn, 4 critical
    gpu: float | None = None  # ratio, the busiest GPU of the node
    receive: float | None = None  # bytes/s on the training interface
    transmit: float | None = None
    link_speed: float | None = None  # bytes/s; None when the interface does not say
    link_kind: str | None = None  # ethernet, wifi, thunderbolt, loopback, other
    peer_rtt: float | None = None  # seconds, the slowest peer
    peers_down: int = 0

    @property
    def link_utilisation(self) -> float | None:
        """The busier direction against the link speed."""
        rates = [r for r in (self.receive, self.transmit) if r is not None]
        if not rates or not self.link_speed:
            return None
        return max(rates) / self.link_speed


@dataclass(frozen=True)
class RankFigures:
    rank: int
    node: str
    up: bool
    steps: float | None = None
    target: float | None = None
    steps_rate: float | None = None  # steps/s over the rules' window
    lag: float | None = None  # steps behind the job's leading rank
    comm_fraction: float | None = None
    busbw: float | None = None  # all-reduce bus bandwidth, bytes/s
    finished: bool = False

    @property
    def state(self) -> str:
        return "finished" if self.finished else ("running" if self.up else "DOWN")


@dataclass(frozen=True)
class JobFigures:
    job_id: str
    ranks: tuple[RankFigures, ...]
    eta: float | None = None  # seconds until the slowest rank reaches its target
    comm_fraction: float | None = None  # the job's (its least-communicating rank's)

    @property
    def slowest(self) -> RankFigures | None:
        """The rank furthest behind (fewest steps); it sets the job's pace."""
        known = [r for r in self.ranks if r.steps is not None]
        return min(known, key=lambda r: (r.steps, -r.rank)) if known else None

    @property
    def progress(self) -> float | None:
        slowest = self.slowest
        if slowest is None or not slowest.target:
            return None
        return (slowest.steps or 0.0) / slowest.target

    @property
    def running(self) -> bool:
        return any(r.up and not r.finished for r in self.ranks)


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    labels: Mapping[str, str]

    @property
    def where(self) -> str:
        """The labels that say what fires: node, job, rank, device, peer."""
        keys = ("node", "job_id", "rank", "device", "peer", "mountpoint", "instance")
        shown = [f"{k}={self.labels[k]}" for k in keys if k in self.labels]
        if "node" in self.labels:
            shown = [s for s in shown if not s.startswith("instance=")]
        return " ".join(shown)


@dataclass(frozen=True)
class Snapshot:
    url: str
    at: float  # the evaluation time of every query in it
    nodes: tuple[NodeFigures, ...] = ()
    jobs: tuple[JobFigures, ...] = ()
    alerts: tuple[Alert, ...] = ()
    watchdog: bool = False  # the always-firing heartbeat is firing: alerting works


def _value(sample: dict) -> float | None:
    value = float(sample["value"][1])
    return None if math.isnan(value) else value


def _positive(value: float | None) -> float | None:
    """Linux reports an unknown link speed as -1 Mb/s."""
    return value if value is not None and value > 0 else None


def _by(answer: list[dict], *keys: str) -> dict[tuple[str, ...], float | None]:
    """Samples keyed by the values of `keys`; a sample lacking one of them is skipped."""
    keyed = {}
    for sample in answer:
        labels = sample["metric"]
        if all(k in labels for k in keys):
            keyed[tuple(labels[k] for k in keys)] = _value(sample)
    return keyed


def _nodes(config: Config | None, answers: Mapping[str, list[dict]]) -> list[NodeFigures]:
    up = _by(answers["node_up"], "node")
    known = [(n.name, n.role, n.interface) for n in config.nodes] if config else []
    names = {name for name, _, _ in known}
    # Nodes Prometheus scrapes that the config does not name still show, unlabelled.
    known += [(name, "?", "?") for (name,) in sorted(up) if name not in names]
    per_node = {
        key: _by(answers[key], "node")
        for key in ("cpu", "memory_used", "pressure", "gpu", "peer_rtt", "peers_down")
    }
    per_device = {
        key: _by(answers[key], "node", "device") for key in ("receive", "transmit", "link_speed")
    }
    kinds = {
        (s["metric"].get("node"), s["metric"].get("device")): s["metric"].get("kind")
        for s in answers["link_kind"]
    }
    nodes = []
    for name, role, interface in known:
        state = up.get((name,))
        pressure = per_node["pressure"].get((name,))
        nodes.append(
            NodeFigures(
                name=name,
                role=role,
                interface=interface,
                up=None if state is None else state == 1,
                cpu=per_node["cpu"].get((name,)),
                memory_used=per_node["memory_used"].get((name,)),
                pressure=None if pressure is None else int(pressure),
                gpu=per_node["gpu"].get((name,)),
                receive=per_device["receive"].get((name, interface)),
                transmit=per_device["transmit"].get((name, interface)),
                link_speed=_positive(per_device["link_speed"].get((name, interface))),
                link_kind=kinds.get((name, interface)),
                peer_rtt=per_node["peer_rtt"].get((name,)),
                peers_down=int(per_node["peers_down"].get((name,)) or 0),
            )
        )
    return nodes


def _jobs(answers: Mapping[str, list[dict]]) -> list[JobFigures]:
    def per_rank(key: str) -> dict[tuple[str, str], float | None]:
        return _by(answers[key], "job_id", "rank")

    up = {
        (s["metric"]["job_id"], s["metric"]["rank"]): s
        for s in answers["rank_up"]
        if "job_id" in s["metric"] and s["metric"].get("rank", "").isdigit()
    }
    steps, target, rate = per_rank("steps"), per_rank("target"), per_rank("steps_rate")
    comm, busbw, finished = per_rank("comm"), per_rank("busbw"), per_rank("finished")
    eta = _by(answers["eta"], "job_id")
    job_comm = _by(answers["job_comm"], "job_id")
    leading: dict[str, float] = {}
    for (job_id, rank), value in steps.items():
        if (job_id, rank) in up and value is not None:
            leading[job_id] = max(leading.get(job_id, value), value)
    ranks: dict[str, list[RankFigures]] = {}
    for (job_id, rank), sample in up.items():
        key = (job_id, rank)
        step = steps.get(key)
        ranks.setdefault(job_id, []).append(
            RankFigures(
                rank=int(rank),
                node=sample["metric"].get("node", "?"),
                up=_value(sample) == 1,
                steps=step,
                target=target.get(key),
                steps_rate=rate.get(key),
                lag=None if step is None else leading[job_id] - step,
                comm_fraction=comm.get(key),
                busbw=busbw.get(key),
                finished=finished.get(key) == 1,
            )
        )
    # Job ids sort by start time: newest first.
    return [
        JobFigures(
            job_id,
            tuple(sorted(ranks[job_id], key=lambda r: r.rank)),
            eta=eta.get((job_id,)),
            comm_fraction=job_comm.get((job_id,)),
        )
        for job_id in sorted(ranks, reverse=True)
    ]


def _alerts(answer: list[dict]) -> tuple[list[Alert], bool]:
    alerts, watchdog = [], False
    for sample in answer:
        labels = sample["metric"]
        name = labels.get("alertname", "?")
        if name == WATCHDOG:
            watchdog = True
            continue
        alerts.append(Alert(name, labels.get("severity", "-"), dict(labels)))
    rank = {"critical": 0, "warning": 1}
    alerts.sort(key=lambda a: (rank.get(a.severity, 2), a.name, a.where))
    return alerts, watchdog


def snapshot_from_answers(
    url: str, at: float, config: Config | None, answers: Mapping[str, list[dict]]
) -> Snapshot:
    alerts, watchdog = _alerts(answers["alerts"])
    return Snapshot(
        url=url,
        at=at,
        nodes=tuple(_nodes(config, answers)),
        jobs=tuple(_jobs(answers)),
        alerts=tuple(alerts),
        watchdog=watchdog,
    )


def fetch(
    ask: Callable[[str, float], list[dict]],
    url: str,
    config: Config | None,
    window: str = "1m",
    now: Callable[[], float] = time.time,
) -> Snapshot:
    """One frame: every query evaluated at the same instant. `ask(expr, at)` is
    Prometheus.vector (minicluster.core.promapi); its errors pass through."""
    at = now()
    answers = {name: ask(expr, at) for name, expr in queries(window).items()}
    return snapshot_from_answers(url, at, config, answers)


def window_for(config: Config | None) -> str:
    """The recording rules' rate window for this config's scrape interval."""
    interval = config.prometheus.scrape_interval_seconds if config else 15
    return metrics.rate_window(interval)
