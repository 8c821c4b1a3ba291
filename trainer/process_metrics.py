"""`process_*` metrics from psutil, so they exist on macOS.

prometheus_client's ProcessCollector reads /proc, which macOS does not have: there it
yields nothing. The exporter's psutil-based process collector publishes the same names
on both systems; the trainer serves it too, guarded so that a failed read drops only
these series and never the rank's scrape (the exporter guards every collector itself).
"""

from __future__ import annotations

from collections.abc import Iterator

import psutil
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from minicluster.exporter.collectors.process import ProcessCollector, ProcessReader


class PsutilProcessCollector(Collector):
    def __init__(self, process: psutil.Process | None = None):
        self._collector = ProcessCollector(ProcessReader(process))

    def collect(self) -> Iterator[Metric]:
        try:
            families = list(self._collector.collect())
        except psutil.Error:
            return  # the scrape still carries the trainer's own metrics
        yield from families
