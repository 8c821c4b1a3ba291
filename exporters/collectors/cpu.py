"""cpu: `node_cpu_seconds_total{cpu,mode}` and, on Linux, `node_cpu_guest_seconds_total`.

Linux: the cpuN lines of /proc/stat (read once per scrape with the stat and boottime
collectors), labelled with the CPU's number as node_exporter does, so an offline CPU
leaves a gap rather than renumbering the rest. macOS: psutil (host_processor_info).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psutil
from prometheus_client.core import CounterMetricFamily, Metric

from minicluster.exporter.collectors.base import Collector, for_platform, read_once, register
from minicluster.exporter.collectors.families import add_sample, labeled

# Guest time is already inside user/nice on Linux; node_exporter publishes it apart.
GUEST_MODES = {"guest": "user", "guest_nice": "nice"}


LINUX_MODES = (
    *("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"),
    *("guest", "guest_nice"),
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def parse_proc_stat_cpus(text: str, ticks: int = CLOCK_TICKS) -> dict[str, dict[str, float]]:
    """/proc/stat's "cpu3 288085 55 ..." lines -> {"3": {"user": seconds, ...}}."""
    cpus = {}
    for line in text.splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *values = line.split()
        cpus[name[3:]] = {
            mode: int(v) / ticks for mode, v in zip(LINUX_MODES, values, strict=False)
        }
    return cpus


def read_linux() -> dict[str, dict[str, float]]:
    return parse_proc_stat_cpus(read_once("/proc/stat"))


def read_darwin() -> list[dict[str, float]]:
    """Seconds per mode for each CPU from host_processor_info (through psutil)."""
    return [times._asdict() for times in psutil.cpu_times(percpu=True)]


@register
class CpuCollector(Collector):
    name = "cpu"

    def default_source(self):
        return for_platform(linux=read_linux, darwin=read_darwin)

    def collect(self) -> Iterator[Metric]:
        seconds = labeled(
            CounterMetricFamily,
            "node_cpu_seconds_total",
            "Seconds the CPUs spent in each mode.",
            ("cpu", "mode"),
        )
        guest = labeled(
            CounterMetricFamily,
            "node_cpu_guest_seconds_total",
            "Seconds the CPUs spent in guests (VMs) for each mode.",
            ("cpu", "mode"),
        )
        cpus = self.source()
        numbered = cpus.items() if isinstance(cpus, dict) else enumerate(cpus)
        for cpu, modes in numbered:
            label = str(cpu)
            for mode, value in modes.items():
                if mode in GUEST_MODES:
                    add_sample(guest, {"cpu": label, "mode": GUEST_MODES[mode]}, value)
                else:
                    add_sample(seconds, {"cpu": label, "mode": mode}, value)
        yield seconds
        if guest.samples:
            yield guest
