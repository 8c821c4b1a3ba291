"""What a job report plots: one PromQL query (or a few) per panel.

The trainer's own rates use a window of their own rather than the recording rules' (at
least a minute): a demo job lasts about a minute, and a report should resolve it. Node CPU
and memory use the recording rules (core.metrics.CPU_UTILISATION, MEMORY_AVAILABLE), which
is where macOS and Linux names are made comparable (minicluster/render/rules/node.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minicluster.core.metrics import (
    ALLREDUCE_BYTES,
    ALLREDUCE_CALLS,
    ALLREDUCE_SECONDS,
    CPU_UTILISATION,
    LOSS,
    MEMORY_AVAILABLE,
    NODE,
    NOT_LOOPBACK,
    PHASE_SECONDS,
    PHASES,
    RESTARTS,
    SAMPLES,
    STEPS,
    rate_window_seconds,
)
from minicluster.report.job import selector


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str  # str.format template over the series' labels, e.g. "rank {rank}"


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    caption: str
    queries: list[Query]
    unit: str  # y-axis label
    scale: float = 1.0  # multiply values (seconds -> ms, bytes -> MB)
    stacked: bool = False
    percent: bool = False  # a 0..1 ratio shown as 0..100 %
    order: list[str] = field(default_factory=list)  # legend order for stacked panels


def rate_window(scrape_interval: float, step: float) -> str:
    """core.metrics' window rule (four scrapes at least), with two query steps rather than
    a minute as the floor, so a job of a minute is resolved."""
    return f"{rate_window_seconds(scrape_interval, floor_seconds=2 * step)}s"


def interface_selector(interfaces: dict[str, str]) -> str:
    """node -> training interface, as an exporter series selector for those devices."""
    devices = "|".join(sorted(set(interfaces.values())))
    nodes = "|".join(sorted(interfaces))
    return f'{NODE}, node=~"{nodes}", device=~"{devices}"'


def job_panels(job_id: str, window: str, interfaces: dict[str, str]) -> list[Panel]:
    job = selector(job_id)
    nic = interface_selector(interfaces) if interfaces else f"{NODE}, {NOT_LOOPBACK}"
    return [
        Panel(
            "throughput",
            "Throughput per rank",
            f"Samples per second each rank trained (rate of {SAMPLES}).",
            [Query(f"rate({SAMPLES}{{{job}}}[{window}])", "rank {rank} on {node}")],
            "samples/s",
        ),
        Panel(
            "loss",
            "Loss",
            f"{LOSS} of each rank, set at every log step.",
            [Query(f"{LOSS}{{{job}}}", "rank {rank}")],
            "loss",
        ),
        Panel(
            "phases",
            "Step time by phase",
            "Mean over ranks of the seconds per step spent in each phase: where the step "
            "time goes. comm is the all-reduce (including waiting for the slowest rank).",
            [
                Query(
                    f"avg by (phase) (rate({PHASE_SECONDS}{{{job}}}[{window}]) "
                    f"/ ignoring (phase) group_left rate({STEPS}{{{job}}}[{window}]))",
                    "{phase}",
                )
            ],
            "ms per step",
            scale=1000.0,
            stacked=True,
            order=list(PHASES),
        ),
        Panel(
            "network",
            "All-reduce bytes against NIC bytes",
            "Gradient bytes the ranks of each node all-reduced per second, next to what the "
            "node's training interface transmitted (its exporter's node_network counters). "
            "On one machine both 'nodes' share the loopback interface, which also carries "
            "the scrapes.",
            [
                Query(
                    f"sum by (node) (rate({ALLREDUCE_BYTES}{{{job}}}[{window}]))",
                    "all-reduce, ranks on {node}",
                ),
                Query(
                    f"rate(node_network_transmit_bytes_total{{{nic}}}[{window}])",
                    "{node} {device} transmit",
                ),
            ],
            "MB/s",
            scale=1e-6,
        ),
        Panel(
            "cpu",
            "Node CPU",
            f"Share of CPU time not idle, over all cores of each node ({CPU_UTILISATION}).",
            [Query(f"avg by (node) ({CPU_UTILISATION}{{{NODE}}})", "{node}")],
            "CPU busy",
            percent=True,
        ),
        Panel(
            "memory",
            "Node memory available",
            f"Share of memory available without swapping ({MEMORY_AVAILABLE}).",
            [Query(f"{MEMORY_AVAILABLE}{{{NODE}}}", "{node}")],
            "memory available",
            percent=True,
        ),
    ]


# Per-rank totals at the end of the job: metric -> column title.
TOTALS = {
    STEPS: "steps",
    SAMPLES: "samples",
    ALLREDUCE_CALLS: "all-reduce calls",
    ALLREDUCE_BYTES: "all-reduce bytes",
    ALLREDUCE_SECONDS: "all-reduce s",
    RESTARTS: "restarts",
    LOSS: "last loss",
}

FIRING_ALERTS = 'ALERTS{alertstate="firing"}'
