"""uname: `node_uname_info{sysname,release,version,machine,nodename,domainname}`."""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import Collector, register
from minicluster.exporter.collectors.heldfiles import read_text

LABELS = ("sysname", "release", "version", "machine", "nodename", "domainname")


def read_uname() -> dict[str, str]:
    name = os.uname()
    try:  # Linux keeps the NIS domain here; macOS has none, as node_exporter shows it
        domain = read_text("/proc/sys/kernel/domainname").strip()
    except OSError:
        domain = "(none)"
    return {
        "sysname": name.sysname,
        "release": name.release,
        "version": name.version,
        "machine": name.machine,
        "nodename": name.nodename,
        "domainname": domain,
    }


@register
class UnameCollector(Collector):
    name = "uname"

    def default_source(self):
        return read_uname

    def collect(self) -> Iterator[Metric]:
        info = self.source()
        family = GaugeMetricFamily(
            "node_uname_info",
            "Labeled system information as provided by the uname system call.",
            labels=list(LABELS),
        )
        family.add_metric([info[label] for label in LABELS], 1.0)
        yield family
