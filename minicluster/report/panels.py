"""What a job report plots: one PromQL query (or a few) per panel.

Rates use a window of their own rather than the recording rules' (at least a minute):
a demo job lasts about a minute, and a report should resolve it. Memory uses the
recording rule `node:memory_available:ratio`, which is where macOS and Linux memory
names are made comparable (minicluster/render/rules.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    """Four scrapes at least (rate needs two points, and a missed scrape must not leave a
    gap), and at least two query steps."""
    return f"{int(max(4 * scrape_interval, 2 * step))}s"


def interface_selector(interfaces: dict[str, str]) -> str:
    """node -> training interface, as an exporter series selector for those devices."""
    devices = "|".join(sorted(set(interfaces.values())))
    nodes = "|".join(sorted(interfaces))
    return f'job="node", node=~"{nodes}", device=~"{devices}"'


def job_panels(job_id: str, window: str, interfaces: dict[str, str]) -> list[Panel]:
    job = selector(job_id)
    nic = interface_selector(interfaces) if interfaces else 'job="node", device!~"lo|lo0"'
    phases = ["data", "forward", "backward", "comm", "optimizer", "staging"]
    return [
        Panel(
            "throughput",
            "Throughput per rank",
            "Samples per second each rank trained (rate of trainer_samples_total).",
            [Query(f"rate(trainer_samples_total{{{job}}}[{window}])", "rank {rank} on {node}")],
            "samples/s",
        ),
        Panel(
            "loss",
            "Loss",
            "trainer_loss of each rank, set at every log step.",
            [Query(f"trainer_loss{{{job}}}", "rank {rank}")],
            "loss",
        ),
        Panel(
            "phases",
            "Step time by phase",
            "Mean over ranks of the seconds per step spent in each phase: where the step "
            "time goes. comm is the all-reduce (including waiting for the slowest rank).",
            [
                Query(
                    f"avg by (phase) (rate(trainer_phase_seconds_total{{{job}}}[{window}]) "
                    f"/ ignoring (phase) group_left rate(trainer_steps_total{{{job}}}[{window}]))",
                    "{phase}",
                )
            ],
            "ms per step",
            scale=1000.0,
            stacked=True,
            order=phases,
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
                    f"sum by (node) (rate(trainer_allreduce_bytes_total{{{job}}}[{window}]))",
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
            "Share of CPU time not idle, over all cores of each node.",
            [
                Query(
                    "1 - avg by (node) "
                    f'(rate(node_cpu_seconds_total{{job="node", mode="idle"}}[{window}]))',
                    "{node}",
                )
            ],
            "CPU busy",
            percent=True,
        ),
        Panel(
            "memory",
            "Node memory available",
            "Share of memory available without swapping (node:memory_available:ratio).",
            [Query('node:memory_available:ratio{job="node"}', "{node}")],
            "memory available",
            percent=True,
        ),
    ]


# Per-rank totals at the end of the job: metric -> column title.
TOTALS = {
    "trainer_steps_total": "steps",
    "trainer_samples_total": "samples",
    "trainer_allreduce_calls_total": "all-reduce calls",
    "trainer_allreduce_bytes_total": "all-reduce bytes",
    "trainer_allreduce_seconds_total": "all-reduce s",
    "trainer_restarts_total": "restarts",
    "trainer_loss": "last loss",
}

FIRING_ALERTS = 'ALERTS{alertstate="firing"}'
