"""Cluster overview: every node's CPU, memory, disk, network, peers and exporter health."""

from __future__ import annotations

from minicluster.core import metrics
from minicluster.core.config import Config
from minicluster.core.metrics import NOT_LOOPBACK
from minicluster.render.dashboards.common import (
    new_dashboard,
    query_variable,
    row,
    stat_panel,
    table_panel,
    target,
    timeseries_panel,
)

UID = "minicluster-cluster-overview"
TITLE = "minicluster / Cluster overview"
NODE = 'node=~"$node"'
NODE_SERIES = f"{metrics.NODE}, {NODE}"


def build(config: Config):
    a = config.alerts
    return (
        new_dashboard(UID, TITLE, "Every node of the cluster: resources, links and health.")
        .with_variable(query_variable("node", "Node", f"label_values(up{{{metrics.NODE}}}, node)"))
        .with_row(row("Health"))
        .with_panel(
            stat_panel(
                "Exporters",
                [target(f"up{{{NODE_SERIES}}}", "{{node}}")],
                unit="none",
                description="Whether Prometheus' last scrape of each node's exporter worked.",
                width=8,
                steps=((None, "red"), (1, "green")),
                mappings={"0": "down", "1": "up"},
            )
        )
        .with_panel(
            table_panel(
                "Firing alerts",
                [target('ALERTS{alertstate="firing"}', instant=True)],
                description="Alerts firing now (Watchdog always fires: it proves alerting works).",
                width=16,
                height=4,
                hide_columns=("Time", "__name__", "alertstate", "Value"),
            )
        )
        .with_row(row("CPU and memory"))
        .with_panel(
            timeseries_panel(
                "CPU utilisation",
                [target(f"{metrics.CPU_UTILISATION}{{{NODE}}}", "{{node}}")],
                unit="percentunit",
                description="Share of CPU time not idle, all cores together.",
                width=8,
                minimum=0,
                maximum=1,
                threshold=a.cpu_saturated_ratio,
            )
        )
        .with_panel(
            timeseries_panel(
                "Load per core",
                [target(f"node:load1_per_cpu:ratio{{{NODE}}}", "{{node}}")],
                unit="none",
                description="1-minute load average over the number of cores; above 1 is queueing.",
                width=8,
                minimum=0,
            )
        )
        .with_panel(
            timeseries_panel(
                "Available memory",
                [target(f"{metrics.MEMORY_AVAILABLE}{{{NODE}}}", "{{node}}")],
                unit="percentunit",
                description=(
                    "Memory usable without swapping: MemAvailable on Linux, free + inactive "
                    "on macOS."
                ),
                width=8,
                minimum=0,
                maximum=1,
                threshold=a.memory_available_min_ratio,
            )
        )
        .with_panel(
            timeseries_panel(
                "Memory pressure",
                [target(f"minicluster_memory_pressure_level{{{NODE_SERIES}}}", "{{node}}")],
                unit="none",
                description="The kernel's memory pressure level: 1 normal, 2 warn, 4 critical.",
                width=12,
                minimum=0,
                maximum=4,
                threshold=a.memory_pressure_level,
            )
        )
        .with_panel(
            timeseries_panel(
                "Swap traffic",
                [target(f"node:swap_io_bytes:rate{{{NODE}}}", "{{node}}")],
                unit="Bps",
                description="Bytes swapped in and out per second.",
                width=12,
                minimum=0,
                threshold=a.swap_bytes_per_second,
            )
        )
        .with_row(row("Disk"))
        .with_panel(
            timeseries_panel(
                "Filesystem space available",
                [
                    target(
                        f"node_mountpoint:filesystem_avail:ratio{{{NODE}}}",
                        "{{node}} {{mountpoint}}",
                    )
                ],
                unit="percentunit",
                description="Free space each filesystem has left for ordinary users.",
                minimum=0,
                maximum=1,
                threshold=a.filesystem_free_min_ratio,
            )
        )
        .with_panel(
            timeseries_panel(
                "Disk throughput",
                [
                    target(
                        f"rate(node_disk_read_bytes_total{{{NODE_SERIES}}}[$__rate_interval])",
                        "{{node}} {{device}} read",
                    ),
                    target(
                        f"-rate(node_disk_written_bytes_total{{{NODE_SERIES}}}[$__rate_interval])",
                        "{{node}} {{device}} written",
                        ref="B",
                    ),
                ],
                unit="Bps",
                description="Bytes read (up) and written (down) per second, per disk.",
            )
        )
        .with_row(row("Network"))
        .with_panel(
            timeseries_panel(
                "NIC traffic and link speed",
                [
                    target(
                        f"node_device:network_receive_bytes:rate{{{NODE}}}",
                        "{{node}} {{device}} rx",
                    ),
                    target(
                        f"node_device:network_transmit_bytes:rate{{{NODE}}}",
                        "{{node}} {{device}} tx",
                        ref="B",
                    ),
                    target(
                        f"node_network_speed_bytes{{{NODE_SERIES}, {NOT_LOOPBACK}}} > 0",
                        "{{node}} {{device}} link speed",
                        ref="C",
                    ),
                ],
                unit="Bps",
                description="Bytes per second on every interface but loopback, and its speed.",
            )
        )
        .with_panel(
            timeseries_panel(
                "NIC utilisation",
                [
                    target(
                        f"node_device:network_utilisation:ratio{{{NODE}}}",
                        "{{node}} {{device}}",
                    )
                ],
                unit="percentunit",
                description="The busier direction of each interface against its link speed.",
                minimum=0,
                maximum=1,
                threshold=a.nic_saturation_ratio,
            )
        )
        .with_panel(
            timeseries_panel(
                "Peer round trip",
                [
                    target(
                        f"minicluster_peer_rtt_seconds{{{NODE_SERIES}}}",
                        "{{node}} → {{peer}}",
                    )
                ],
                unit="s",
                description="TCP connect time from each node to every other node's exporter.",
                minimum=0,
                threshold=a.peer_rtt_max_seconds,
            )
        )
        .with_panel(
            stat_panel(
                "Peers reachable",
                [target(f"minicluster_peer_up{{{NODE_SERIES}}}", "{{node}} → {{peer}}")],
                unit="none",
                description="Whether each node could connect to each peer at the last scrape.",
                width=12,
                height=8,
                steps=((None, "red"), (1, "green")),
                mappings={"0": "unreachable", "1": "reachable"},
            )
        )
        .with_row(row("Exporter health"))
        .with_panel(
            table_panel(
                "Collectors",
                [
                    target(
                        f"node_scrape_collector_success{{{NODE_SERIES}}}",
                        instant=True,
                    ),
                    target(
                        f"node_scrape_collector_duration_seconds{{{NODE_SERIES}}}",
                        instant=True,
                        ref="B",
                    ),
                ],
                description="Per collector: did it succeed at the last scrape, how long it took.",
                rename={"Value #A": "success", "Value #B": "seconds"},
                hide_columns=("Time", "__name__", "instance", "job", "role"),
            )
        )
        .with_panel(
            timeseries_panel(
                "Scrape duration",
                [target(f"scrape_duration_seconds{{{NODE_SERIES}}}", "{{node}}")],
                unit="s",
                description="How long each exporter took to answer Prometheus.",
                minimum=0,
            )
        )
    )
