"""Node rules: the exporter's node_exporter-named metrics, made alike on macOS and Linux
by the recording rules; the alerts build on those."""

from __future__ import annotations

from minicluster.core.config import Config
from minicluster.core.metrics import (
    CPU_UTILISATION,
    MEMORY_AVAILABLE,
    NODE,
    NOT_LOOPBACK,
    cpu_utilisation_promql,
)
from minicluster.render.rules.common import (
    alert,
    duration,
    minutes_text,
    number,
    percent,
    rate_window,
    record,
)

# Only real interfaces: loopback is never cluster traffic.
NIC = f"{NODE}, {NOT_LOOPBACK}"


def recording_rules(config: Config) -> list[dict]:
    w = rate_window(config)
    return [
        record(
            MEMORY_AVAILABLE,
            f"""
# Linux: MemAvailable, the kernel's own estimate of memory usable without swapping.
node_memory_MemAvailable_bytes{{{NODE}}} / node_memory_MemTotal_bytes{{{NODE}}}
or
# macOS has no MemAvailable: free + inactive pages, the same sum psutil reports as
# `available` on macOS. Purgeable pages are left out: they are counted inside active and
# inactive already.
(node_memory_free_bytes{{{NODE}}} + node_memory_inactive_bytes{{{NODE}}})
  / node_memory_total_bytes{{{NODE}}}
""",
        ),
        record(
            CPU_UTILISATION,
            f"""
# Busy = not idle, averaged over all cores. macOS has user/nice/system/idle only, Linux
# also iowait/irq/steal; "not idle" means the same on both.
{cpu_utilisation_promql(w)}
""",
        ),
        record(
            "node:load1_per_cpu:ratio",
            f"""
node_load1{{{NODE}}}
  / count without (cpu, mode) (node_cpu_seconds_total{{{NODE}, mode="idle"}})
""",
        ),
        record(
            "node_device:network_receive_bytes:rate",
            f"rate(node_network_receive_bytes_total{{{NIC}}}[{w}])",
        ),
        record(
            "node_device:network_transmit_bytes:rate",
            f"rate(node_network_transmit_bytes_total{{{NIC}}}[{w}])",
        ),
        record(
            "node:network_receive_bytes:rate",
            "sum without (device) (node_device:network_receive_bytes:rate)",
        ),
        record(
            "node:network_transmit_bytes:rate",
            "sum without (device) (node_device:network_transmit_bytes:rate)",
        ),
        record(
            "node_device:network_errors:ratio",
            f"""
(
    rate(node_network_receive_errs_total{{{NIC}}}[{w}])
  + rate(node_network_transmit_errs_total{{{NIC}}}[{w}])
)
/
(
    rate(node_network_receive_packets_total{{{NIC}}}[{w}])
  + rate(node_network_transmit_packets_total{{{NIC}}}[{w}])
)
""",
        ),
        record(
            "node_device:network_utilisation:ratio",
            f"""
# The busier direction against the link speed; links of unknown speed are left out.
max without (direction) (
    label_replace(node_device:network_receive_bytes:rate, "direction", "receive", "", "")
  or
    label_replace(node_device:network_transmit_bytes:rate, "direction", "transmit", "", "")
)
/ (node_network_speed_bytes{{{NODE}}} > 0)
""",
        ),
        record(
            "node:swap_io_bytes:rate",
            f"""
# Bytes swapped in plus out per second.
# macOS: the exporter's node_memory_swapped_{{in,out}}_bytes_total (swapins/swapouts pages).
  rate(node_memory_swapped_in_bytes_total{{{NODE}}}[{w}])
+ rate(node_memory_swapped_out_bytes_total{{{NODE}}}[{w}])
or
# Linux: node_exporter's /proc/vmstat page counters; 4096-byte pages.
(
    rate(node_vmstat_pswpin{{{NODE}}}[{w}])
  + rate(node_vmstat_pswpout{{{NODE}}}[{w}])
) * 4096
""",
        ),
        record(
            "node_mountpoint:filesystem_avail:ratio",
            f"""
node_filesystem_avail_bytes{{{NODE}}} / (node_filesystem_size_bytes{{{NODE}}} > 0)
""",
        ),
        record(
            "node:clock_skew:seconds",
            f"""
# The node's clock minus Prometheus' clock at the scrape (macOS has no timex offset).
node_time_seconds{{{NODE}}} - timestamp(node_time_seconds{{{NODE}}})
""",
        ),
    ]


def alerts(config: Config) -> list[dict]:
    a = config.alerts
    w = rate_window(config)
    pressure_severity = "critical" if a.memory_pressure_level == 4 else "warning"
    hours_seconds = a.filesystem_predict_full_hours * 3600
    return [
        alert(
            config,
            "NodeExporterDown",
            f"up{{{NODE}}} == 0",
            for_minutes=a.exporter_down_minutes,
            severity="critical",
            summary="A node's exporter is not answering.",
            description=(
                "The exporter on {{ $labels.node }} ({{ $labels.instance }}) has not answered "
                f"Prometheus for {duration(a.exporter_down_minutes)}: that node's metrics and "
                "its trainer discovery "
                "are missing."
            ),
        ),
        alert(
            config,
            "NodeCPUSaturated",
            f"{CPU_UTILISATION} > {number(a.cpu_saturated_ratio)}",
            for_minutes=a.cpu_saturated_for_minutes,
            severity="warning",
            summary="A node's CPU is saturated.",
            description=(
                "{{ $labels.node }} has been {{ $value | humanizePercentage }} busy for "
                f"{minutes_text(a.cpu_saturated_for_minutes)} "
                f"(threshold {percent(a.cpu_saturated_ratio)}%)."
            ),
        ),
        alert(
            config,
            "NodeMemoryPressure",
            f"minicluster_memory_pressure_level{{{NODE}}} >= {a.memory_pressure_level}",
            for_minutes=a.memory_pressure_for_minutes,
            severity=pressure_severity,
            summary="macOS reports memory pressure on a node.",
            description=(
                "{{ $labels.node }} has been at memory pressure level {{ $value }} for "
                f"{minutes_text(a.memory_pressure_for_minutes)} "
                f"(1 normal, 2 warn, 4 critical; threshold {a.memory_pressure_level})."
            ),
        ),
        alert(
            config,
            "NodeMemoryLow",
            f"{MEMORY_AVAILABLE} < {number(a.memory_available_min_ratio)}",
            for_minutes=a.memory_low_for_minutes,
            severity="warning",
            summary="A node is running out of available memory.",
            description=(
                "{{ $labels.node }} has only {{ $value | humanizePercentage }} of its memory "
                f"available (threshold {percent(a.memory_available_min_ratio)}%)."
            ),
        ),
        alert(
            config,
            "NodeFilesystemAlmostFull",
            f"""
node_mountpoint:filesystem_avail:ratio < {number(a.filesystem_free_min_ratio)}
and
node_filesystem_readonly{{{NODE}}} == 0
""",
            for_minutes=a.filesystem_almost_full_for_minutes,
            severity="critical",
            summary="A filesystem is almost full.",
            description=(
                "{{ $labels.mountpoint }} on {{ $labels.node }} has "
                "{{ $value | humanizePercentage }} space left "
                f"(threshold {percent(a.filesystem_free_min_ratio)}%)."
            ),
        ),
        alert(
            config,
            "NodeFilesystemFillingUp",
            f"""
predict_linear(node_filesystem_avail_bytes{{{NODE}}}[6h], {hours_seconds}) < 0
# A mostly empty disk that fills fast is not yet worth a page.
and
node_mountpoint:filesystem_avail:ratio < 0.4
and
node_filesystem_readonly{{{NODE}}} == 0
""",
            for_minutes=a.filesystem_filling_up_for_minutes,
            severity="warning",
            summary="A filesystem is predicted to fill up.",
            description=(
                "At the rate of the last 6 hours, {{ $labels.mountpoint }} on "
                f"{{{{ $labels.node }}}} will be full within {a.filesystem_predict_full_hours} "
                "hours."
            ),
        ),
        alert(
            config,
            "NodeSwapping",
            f"node:swap_io_bytes:rate > {number(a.swap_bytes_per_second)}",
            for_minutes=a.swapping_for_minutes,
            severity="warning",
            summary="A node is swapping.",
            description=(
                "{{ $labels.node }} has been moving {{ $value | humanize1024 }}B/s to and "
                f"from swap for {minutes_text(a.swapping_for_minutes)} "
                f"(threshold {number(a.swap_bytes_per_second)} B/s)."
            ),
        ),
        alert(
            config,
            "NodeNetworkErrors",
            f"node_device:network_errors:ratio > {number(a.network_error_ratio)}",
            for_minutes=a.network_errors_for_minutes,
            severity="warning",
            summary="A network interface is seeing errors.",
            description=(
                "{{ $value | humanizePercentage }} of the packets on {{ $labels.device }} of "
                f"{{{{ $labels.node }}}} are errors (threshold "
                f"{percent(a.network_error_ratio)}%)."
            ),
        ),
        alert(
            config,
            "NodeNetworkSaturated",
            f"node_device:network_utilisation:ratio > {number(a.nic_saturation_ratio)}",
            for_minutes=a.nic_saturated_for_minutes,
            severity="warning",
            summary="A network interface is near its link speed.",
            description=(
                "{{ $labels.device }} on {{ $labels.node }} has run at "
                "{{ $value | humanizePercentage }} of its link speed for "
                f"{minutes_text(a.nic_saturated_for_minutes)} "
                f"(threshold {percent(a.nic_saturation_ratio)}%)."
            ),
        ),
        alert(
            config,
            "NodePeerUnreachable",
            f"minicluster_peer_up{{{NODE}}} == 0",
            for_minutes=a.peer_unreachable_for_minutes,
            severity="critical",
            summary="A node cannot reach a peer.",
            description=(
                "{{ $labels.node }} has not been able to connect to {{ $labels.peer }}'s "
                f"exporter for {minutes_text(a.peer_unreachable_for_minutes)}: training "
                "across them will hang or fail."
            ),
        ),
        alert(
            config,
            "NodePeerSlow",
            f"""
avg_over_time(minicluster_peer_rtt_seconds{{{NODE}}}[{w}])
  > {number(a.peer_rtt_max_seconds)}
and
minicluster_peer_up{{{NODE}}} == 1
""",
            for_minutes=a.peer_slow_for_minutes,
            severity="warning",
            summary="The round trip between two nodes is slow.",
            description=(
                "Connecting from {{ $labels.node }} to {{ $labels.peer }} has taken "
                "{{ $value | humanizeDuration }} on average for "
                f"{minutes_text(a.peer_slow_for_minutes)} "
                f"(threshold {number(a.peer_rtt_max_seconds)}s)."
            ),
        ),
        alert(
            config,
            "NodeClockSkew",
            f"abs(node:clock_skew:seconds) > {number(a.clock_skew_max_seconds)}",
            for_minutes=a.clock_skew_for_minutes,
            severity="warning",
            summary="A node's clock is off.",
            description=(
                "The clock of {{ $labels.node }} differs from Prometheus' by "
                "{{ $value | humanizeDuration }} "
                f"(threshold {number(a.clock_skew_max_seconds)}s): log lines and step "
                "timestamps across nodes no longer line up."
            ),
        ),
    ]
