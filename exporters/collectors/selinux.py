"""selinux (Linux): `node_selinux_enabled`, and the configured and current modes when on.

As node_exporter: `node_selinux_enabled` 0 alone where SELinux is off (no selinuxfs), else
`node_selinux_config_mode` (SELINUX= in /etc/selinux/config) and `node_selinux_current_mode`
(/sys/fs/selinux/enforce), -1 disabled, 0 permissive, 1 enforcing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import LINUX_ONLY, Collector, read_optional, register
from minicluster.exporter.collectors.families import single

ENFORCE = "/sys/fs/selinux/enforce"
CONFIG = "/etc/selinux/config"
MODES = {"disabled": -1, "permissive": 0, "enforcing": 1}


@dataclass(frozen=True)
class Selinux:
    enabled: bool
    config_mode: int = -1
    current_mode: int = -1


def parse_config_mode(text: str | None) -> int:
    for line in (text or "").splitlines():
        key, _, value = line.strip().partition("=")
        if key == "SELINUX":
            return MODES.get(value.strip().strip("\"'").lower(), -1)
    return -1


def read_selinux(enforce: str = ENFORCE, config: str = CONFIG) -> Selinux:
    current = read_optional(enforce)
    if current is None:
        return Selinux(enabled=False)
    return Selinux(True, parse_config_mode(read_optional(config)), int(current.strip() or 0))


@register
class SelinuxCollector(Collector):
    name = "selinux"
    platforms = LINUX_ONLY

    def default_source(self):
        return read_selinux

    def collect(self) -> Iterator[Metric]:
        state = self.source()
        yield single(
            GaugeMetricFamily,
            "node_selinux_enabled",
            "SELinux is enabled, 1 is true, 0 is false",
            1.0 if state.enabled else 0.0,
        )
        if not state.enabled:
            return
        yield single(
            GaugeMetricFamily,
            "node_selinux_config_mode",
            "Configured SELinux enforcement mode",
            state.config_mode,
        )
        yield single(
            GaugeMetricFamily,
            "node_selinux_current_mode",
            "Current SELinux enforcement mode",
            state.current_mode,
        )
