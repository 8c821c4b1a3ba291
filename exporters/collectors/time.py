"""time: `node_time_seconds`, the node's clock, its time zone and (Linux) its clocksource.

`node_time_zone_offset_seconds{time_zone}` and, from /sys/devices/system/clocksource,
`node_time_clocksource_{available,current}_info{clocksource,device}`, as node_exporter.
macOS has no timex: clock-offset alerts compare node_time_seconds with the scrape time
(`timestamp(node_time_seconds) - node_time_seconds`).
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import Collector, register
from minicluster.exporter.collectors.families import single

CLOCKSOURCE_DIR = "/sys/devices/system/clocksource"
# The kernel switches clocksource only when one proves unstable; looking every minute
# rather than at every scrape saves three /sys lookups per scrape.
CLOCKSOURCE_TTL_SECONDS = 60.0


@dataclass(frozen=True)
class Clock:
    seconds: float
    zone: str
    zone_offset_seconds: int
    # device number -> (available clocksources, current one); empty outside Linux
    clocksources: dict[str, tuple[list[str], str]] = field(default_factory=dict)


def read_clocksources(root: str = CLOCKSOURCE_DIR) -> dict[str, tuple[list[str], str]]:
    result = {}
    for path in sorted(glob.glob(f"{root}/clocksource[0-9]*")):
        try:
            with open(f"{path}/available_clocksource") as f:
                available = f.read().split()
            with open(f"{path}/current_clocksource") as f:
                current = f.read().strip()
        except OSError:
            continue
        result[os.path.basename(path).removeprefix("clocksource")] = (available, current)
    return result


class ClockReader:
    def __init__(self, clocksources=read_clocksources, clock=time.monotonic):
        self.read_clocksources, self.clock = clocksources, clock
        self.clocksources: dict[str, tuple[list[str], str]] = {}
        self.expires = float("-inf")

    def __call__(self) -> Clock:
        if self.clock() >= self.expires:
            self.clocksources = self.read_clocksources()
            self.expires = self.clock() + CLOCKSOURCE_TTL_SECONDS
        now = time.time()
        local = time.localtime(now)
        return Clock(now, local.tm_zone, local.tm_gmtoff, self.clocksources)


def read_clock() -> Clock:
    return ClockReader()()


@register
class TimeCollector(Collector):
    name = "time"

    def default_source(self):
        return ClockReader()

    def collect(self) -> Iterator[Metric]:
        clock = self.source()
        yield single(
            GaugeMetricFamily,
            "node_time_seconds",
            "System time in seconds since epoch (1970).",
            clock.seconds,
        )
        zone = GaugeMetricFamily(
            "node_time_zone_offset_seconds",
            "System time zone offset in seconds.",
            labels=["time_zone"],
        )
        zone.add_metric([clock.zone], clock.zone_offset_seconds)
        yield zone
        if not clock.clocksources:
            return
        available = GaugeMetricFamily(
            "node_time_clocksource_available_info",
            f"Available clocksources read from '{CLOCKSOURCE_DIR}'.",
            labels=["clocksource", "device"],
        )
        current = GaugeMetricFamily(
            "node_time_clocksource_current_info",
            f"Current clocksource read from '{CLOCKSOURCE_DIR}'.",
            labels=["clocksource", "device"],
        )
        for device, (names, now_using) in sorted(clock.clocksources.items()):
            for name in names:
                available.add_metric([name, device], 1.0)
            current.add_metric([now_using, device], 1.0)
        yield available
        yield current
