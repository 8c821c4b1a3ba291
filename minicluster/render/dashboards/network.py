"""Network: traffic between the Minis per interface, next to the trainer's all-reduce."""

from __future__ import annotations

from minicluster.core import metrics
from minicluster.core.config import Config
from minicluster.core.metrics import NOT_LOOPBACK
from minicluster.render.dashboards.common import (
    new_dashboard,
    query_variable,
    row,
    target,
    timeseries_panel,
)

UID = "minicluster-network"
TITLE = "minicluster / Network"
DEVICES = 'node=~"$node", device=~"$device"'
LEGEND = "{{node}} {{device}}"


def _rate(metric: str, sign: str = "") -> str:
    return f"{sign}rate({metric}{{{metrics.NODE}, {DEVICES}, {NOT_LOOPBACK}}}[$__rate_interval])"


def build(config: Config):
    a = config.alerts
    return (
        new_dashboard(
            UID,
            TITLE,
            "Bytes, packets, errors and drops on every interface between the nodes, "
            "beside the bytes the training job all-reduces.",
        )
        .with_variable(query_variable("node", "Node", f"label_values(up{{{metrics.NODE}}}, node)"))
        .with_variable(
            query_variable(
                "device",
                "Interface",
                "label_values(node_network_receive_bytes_total"
                f'{{{metrics.NODE}, node=~"$node", {NOT_LOOPBACK}}}, device)',
            )
        )
        .with_variable(
            query_variable(
                "job_id", "Job", f"label_values({metrics.STEPS}{{{metrics.TRAINER}}}, job_id)"
            )
        )
        .with_row(row("Traffic"))
        .with_panel(
            timeseries_panel(
                "Received",
                [target(f"node_device:network_receive_bytes:rate{{{DEVICES}}}", LEGEND)],
                unit="Bps",
                description="Bytes received per second on every interface but loopback.",
                minimum=0,
            )
        )
        .with_panel(
            timeseries_panel(
                "Transmitted",
                [target(f"node_device:network_transmit_bytes:rate{{{DEVICES}}}", LEGEND)],
                unit="Bps",
                description="Bytes sent per second on every interface but loopback.",
                minimum=0,
            )
        )
        .with_panel(
            timeseries_panel(
                "Link traffic against all-reduce",
                [
                    target('node:network_transmit_bytes:rate{node=~"$node"}', "{{node}} sent"),
                    target(
                        "sum by (node) "
                        '(job_rank:trainer_allreduce_bytes:rate{job_id=~"$job_id", node=~"$node"})',
                        "{{node}} all-reduced by the trainer",
                        ref="B",
                    ),
                ],
                unit="Bps",
                description=(
                    "What each node sent on all its interfaces next to the gradient bytes its "
                    "ranks all-reduced: the gap is protocol overhead and other traffic."
                ),
                minimum=0,
            )
        )
        .with_panel(
            timeseries_panel(
                "All-reduce bytes per step",
                [
                    target(
                        'job_rank:trainer_allreduce_bytes_per_step:ratio{job_id=~"$job_id", '
                        'node=~"$node"}',
                        "rank {{rank}} ({{node}})",
                    )
                ],
                unit="bytes",
                description="Gradient bytes each rank all-reduces per optimizer step.",
                minimum=0,
            )
        )
        .with_panel(
            timeseries_panel(
                "Utilisation of link speed",
                [target(f"node_device:network_utilisation:ratio{{{DEVICES}}}", LEGEND)],
                unit="percentunit",
                description="The busier direction against the interface's link speed.",
                minimum=0,
                maximum=1,
                threshold=a.nic_saturation_ratio,
            )
        )
        .with_panel(
            timeseries_panel(
                "Packets",
                [
                    target(_rate("node_network_receive_packets_total"), LEGEND + " rx"),
                    target(
                        _rate("node_network_transmit_packets_total", "-"),
                        LEGEND + " tx",
                        ref="B",
                    ),
                ],
                unit="pps",
                description="Packets per second received (up) and sent (down).",
            )
        )
        .with_row(row("Errors and drops"))
        .with_panel(
            timeseries_panel(
                "Errors",
                [
                    target(_rate("node_network_receive_errs_total"), LEGEND + " rx"),
                    target(_rate("node_network_transmit_errs_total", "-"), LEGEND + " tx", ref="B"),
                ],
                unit="pps",
                description="Packets with errors per second, received (up) and sent (down).",
            )
        )
        .with_panel(
            timeseries_panel(
                "Drops",
                [
                    target(_rate("node_network_receive_drop_total"), LEGEND + " rx"),
                    target(_rate("node_network_transmit_drop_total", "-"), LEGEND + " tx", ref="B"),
                ],
                unit="pps",
                description=(
                    "Packets dropped per second. macOS does not count drops per interface, "
                    "so Minis show none here rather than a fake zero."
                ),
            )
        )
        .with_row(row("Peers"))
        .with_panel(
            timeseries_panel(
                "Peer round trip",
                [
                    target(
                        f'minicluster_peer_rtt_seconds{{{metrics.NODE}, node=~"$node"}}',
                        "{{node}} → {{peer}}",
                    )
                ],
                unit="s",
                description="TCP connect time from each node to every other node's exporter.",
                width=24,
                minimum=0,
                threshold=a.peer_rtt_max_seconds,
            )
        )
    )
