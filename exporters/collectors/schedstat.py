"""schedstat (Linux): per-CPU scheduler time from /proc/schedstat.

`node_schedstat_running_seconds_total{cpu}`, `node_schedstat_waiting_seconds_total{cpu}`,
`node_schedstat_timeslices_total{cpu}`, as node_exporter. Kernels built without
CONFIG_SCHEDSTATS have no such file: no series, and the collector succeeds.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from minicluster.exporter.collectors.base import LINUX_ONLY, Collector, read_optional, register

SCHEDSTAT = "/proc/schedstat"


def parse_schedstat(text: str) -> dict[str, tuple[float, float, float]]:
    """ "cpuN ... running_ns waiting_ns timeslices" -> {N: (running s, waiting s, slices)}."""
    result = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 10 and fields[0].startswith("cpu") and fields[0][3:].isdigit():
            running, waiting, slices = (int(v) for v in fields[7:10])
            result[fields[0][3:]] = (running / 1e9, waiting / 1e9, float(slices))
    return result


def read_schedstat() -> dict[str, tuple[float, float, float]]:
    text = read_optional(SCHEDSTAT)
    return parse_schedstat(text) if text is not None else {}


@register
class SchedstatCollector(Collector):
    name = "schedstat"
    platforms = LINUX_ONLY

    def default_source(self):
        return read_schedstat

    def collect(self) -> Iterator[Metric]:
        running = CounterMetricFamily(
            "node_schedstat_running_seconds_total",
            "Number of seconds CPU spent running a process.",
            labels=["cpu"],
        )
        waiting = CounterMetricFamily(
            "node_schedstat_waiting_seconds_total",
            "Number of seconds spent by processing waiting for this CPU.",
            labels=["cpu"],
        )
        slices = CounterMetricFamily(
            "node_schedstat_timeslices_total",
            "Number of timeslices executed by CPU.",
            labels=["cpu"],
        )
        for cpu, (run, wait, count) in sorted(self.source().items(), key=lambda i: int(i[0])):
            running.add_metric([cpu], run)
            waiting.add_metric([cpu], wait)
            slices.add_metric([cpu], count)
        if running.samples:
            yield from (running, waiting, slices)
