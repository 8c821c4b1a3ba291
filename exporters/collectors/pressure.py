"""pressure (Linux): pressure stall information from /proc/pressure/{cpu,io,memory,irq}.

`node_pressure_<resource>_waiting_seconds_total` is the "some" line (at least one task
stalled), `..._stalled_seconds_total` the "full" line (all non-idle tasks stalled), as
node_exporter names them. A kernel without PSI (older than 4.20, or booted with psi=0)
has no such files, or refuses to read them: no series, and the collector succeeds.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from minicluster.exporter.collectors.base import LINUX_ONLY, Collector, read_optional, register
from minicluster.exporter.collectors.families import single

PRESSURE_DIR = "/proc/pressure"
RESOURCES = ("cpu", "io", "memory", "irq")
HELP = {
    ("cpu", "some"): "Total time in seconds that processes have waited for CPU time",
    ("cpu", "full"): "Total time in seconds no process could make progress due to CPU congestion",
    ("io", "some"): "Total time in seconds that processes have waited due to IO congestion",
    ("io", "full"): "Total time in seconds no process could make progress due to IO congestion",
    ("memory", "some"): "Total time in seconds that processes have waited for memory",
    ("memory", "full"): "Total time in seconds no process could make progress due to memory "
    "congestion",
    ("irq", "full"): "Total time in seconds no process could make progress due to IRQ congestion",
}
KIND = {"some": "waiting", "full": "stalled"}


def parse_pressure(text: str) -> dict[str, float]:
    """One /proc/pressure file -> {"some": seconds, "full": seconds} (totals are in µs)."""
    totals = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        for field in rest.split():
            if field.startswith("total="):
                totals[kind] = int(field[6:]) / 1e6
    return totals


def read_pressure(root: str = PRESSURE_DIR) -> dict[str, dict[str, float]]:
    result = {}
    for resource in RESOURCES:
        text = read_optional(f"{root}/{resource}")
        if text is not None:
            result[resource] = parse_pressure(text)
    return result


@register
class PressureCollector(Collector):
    name = "pressure"
    platforms = LINUX_ONLY

    def default_source(self):
        return read_pressure

    def collect(self) -> Iterator[Metric]:
        for resource, totals in self.source().items():
            for kind, seconds in totals.items():
                help_text = HELP.get((resource, kind))
                if help_text is None:
                    continue  # irq has only a "full" line; anything new is skipped
                yield single(
                    CounterMetricFamily,
                    f"node_pressure_{resource}_{KIND[kind]}_seconds_total",
                    help_text,
                    seconds,
                )
