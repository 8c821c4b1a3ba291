"""softnet (Linux): per-CPU packet processing from /proc/net/softnet_stat.

`node_softnet_{processed,dropped,times_squeezed,cpu_collision,received_rps,
flow_limit_count}_total{cpu}` and `node_softnet_backlog_len{cpu}`, as current node_exporter.
The file has one line of hex columns per online CPU; since Linux 5.10 the 13th column is
the CPU's number, which is the `cpu` label (CPUs can be offline), else the line's index.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import LINUX_ONLY, Collector, register
from minicluster.exporter.collectors.families import add_sample, labeled
from minicluster.exporter.collectors.heldfiles import read_text

SOFTNET_STAT = "/proc/net/softnet_stat"
# column -> (name, help, counter?)
COLUMNS = {
    0: ("processed", "Number of processed packets", True),
    1: ("dropped", "Number of dropped packets", True),
    2: ("times_squeezed", "Number of times processing packets ran out of quota", True),
    8: (
        "cpu_collision",
        "Number of collision occur while obtaining device lock while transmitting",
        True,
    ),
    9: ("received_rps", "Number of times cpu woken up received_rps", True),
    10: ("flow_limit_count", "Number of times flow limit has been reached", True),
    11: ("backlog_len", "Softnet backlog status", False),
}
INDEX_COLUMN = 12


def parse_softnet(text: str) -> dict[str, dict[int, int]]:
    """-> {cpu label: {column: value}} for the columns this kernel has."""
    result = {}
    for number, line in enumerate(text.splitlines()):
        fields = line.split()
        if not fields:
            continue
        cpu = str(int(fields[INDEX_COLUMN], 16)) if len(fields) > INDEX_COLUMN else str(number)
        result[cpu] = {
            column: int(fields[column], 16) for column in COLUMNS if column < len(fields)
        }
    return result


def read_softnet() -> dict[str, dict[int, int]]:
    return parse_softnet(read_text(SOFTNET_STAT))


@register
class SoftnetCollector(Collector):
    name = "softnet"
    platforms = LINUX_ONLY

    def default_source(self):
        return read_softnet

    def collect(self) -> Iterator[Metric]:
        families = {}
        for column, (name, help_text, counter) in COLUMNS.items():
            if counter:
                families[column] = labeled(
                    CounterMetricFamily, f"node_softnet_{name}_total", help_text, ("cpu",)
                )
            else:
                families[column] = labeled(
                    GaugeMetricFamily, f"node_softnet_{name}", help_text, ("cpu",)
                )
        for cpu, columns in self.source().items():
            labels = {"cpu": str(cpu)}
            for column, value in columns.items():
                add_sample(families[column], labels, value)
        yield from (family for family in families.values() if family.samples)
