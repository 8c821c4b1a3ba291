"""cpu: `node_cpu_seconds_total{cpu,mode}` and, on Linux, `node_cpu_guest_seconds_total`."""

from __future__ import annotations

from collections.abc import Iterator

import psutil
from prometheus_client.core import CounterMetricFamily, Metric

from minicluster.exporter.collectors.base import Collector, register

# Guest time is already inside user/nice on Linux; node_exporter publishes it apart.
GUEST_MODES = {"guest": "user", "guest_nice": "nice"}


def read_cpu_times() -> list[dict[str, float]]:
    """Seconds per mode for each CPU: /proc/stat on Linux, host_processor_info on macOS."""
    return [times._asdict() for times in psutil.cpu_times(percpu=True)]


@register
class CpuCollector(Collector):
    name = "cpu"

    def default_source(self):
        return read_cpu_times

    def collect(self) -> Iterator[Metric]:
        seconds = CounterMetricFamily(
            "node_cpu_seconds_total",
            "Seconds the CPUs spent in each mode.",
            labels=["cpu", "mode"],
        )
        guest = CounterMetricFamily(
            "node_cpu_guest_seconds_total",
            "Seconds the CPUs spent in guests (VMs) for each mode.",
            labels=["cpu", "mode"],
        )
        for cpu, modes in enumerate(self.source()):
            label = str(cpu)
            for mode, value in modes.items():
                if mode in GUEST_MODES:
                    guest.add_metric([label, GUEST_MODES[mode]], value)
                else:
                    seconds.add_metric([label, mode], value)
        yield seconds
        if guest.samples:
            yield guest
