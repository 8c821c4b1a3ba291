"""stat (Linux): interrupts, context switches, forks and runnable/blocked processes.

`node_intr_total`, `node_context_switches_total`, `node_forks_total`, `node_procs_running`,
`node_procs_blocked` from /proc/stat, as node_exporter's stat collector. Its
`node_boot_time_seconds` comes from the boottime collector here (on both systems).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import LINUX_ONLY, Collector, read_once, register
from minicluster.exporter.collectors.families import single

PROC_STAT = "/proc/stat"
# /proc/stat key -> (metric, help, counter?)
FIELDS = {
    "intr": ("node_intr_total", "Total number of interrupts serviced.", True),
    "ctxt": ("node_context_switches_total", "Total number of context switches.", True),
    "processes": ("node_forks_total", "Total number of forks.", True),
    "procs_running": ("node_procs_running", "Number of processes in runnable state.", False),
    "procs_blocked": (
        "node_procs_blocked",
        "Number of processes blocked waiting for I/O to complete.",
        False,
    ),
}


def parse_stat(text: str) -> dict[str, int]:
    """/proc/stat -> {"intr": total, "ctxt": ...}; the per-CPU lines are the cpu collector's."""
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(" ")
        if key in FIELDS:
            # "intr" is followed by one count per interrupt line; the first is their sum.
            values[key] = int(rest.split(None, 1)[0])
    return values


def read_stat() -> dict[str, int]:
    return parse_stat(read_once(PROC_STAT))


@register
class StatCollector(Collector):
    name = "stat"
    platforms = LINUX_ONLY

    def default_source(self):
        return read_stat

    def collect(self) -> Iterator[Metric]:
        values = self.source()
        for key, (metric, help_text, counter) in FIELDS.items():
            if key not in values:
                continue
            family = CounterMetricFamily if counter else GaugeMetricFamily
            yield single(family, metric, help_text, values[key])
