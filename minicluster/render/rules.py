"""Prometheus recording and alerting rules, with thresholds from the config's `alerts`.

Recording rules are named `level:metric:operations` (the monitoring-mixin convention) and
are where macOS and Linux are made to look alike; dashboards and alerts build on them.
Alerts are CamelCase with a component prefix (Node, Prometheus, Trainer), a `severity`,
`for:` in minutes, a static summary, a templated description and a runbook link into
docs/runbooks.md. Every rule here is covered by `promtool test rules` in
prometheus/tests/ and evaluated against a live stack in tests/stack/.

Only PromQL that both Prometheus 2.42 and 3.x evaluate the same way is used (3.x made
range selectors left-open, so windows are kept at four or more scrape intervals).
"""

from __future__ import annotations

from minicluster.core.config import Config
from minicluster.render.yamltext import dump_yaml

RUNBOOK = "docs/runbooks.md"
# The only loopback names there are: Linux `lo`, macOS `lo0`.
LOOPBACK = 'device!~"lo|lo0"'
# A rank that restarted within this long raises TrainerRankRestarted.
RESTART_WINDOW_MINUTES = 15
# How long a rank that vanished is remembered by TrainerRankDown (beyond its `for:`).
RANK_MEMORY_MINUTES = 30
COMM_PHASES = 'trainer_phase_seconds_total{job="trainer", phase=~"comm|staging"}'


def number(value: float) -> str:
    """A threshold as PromQL text: 0.9 -> '0.9', 1048576.0 -> '1048576'."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def duration(minutes: float) -> str:
    """A `for:` or range duration: whole minutes as 'Nm', anything else in seconds."""
    if float(minutes).is_integer():
        return f"{int(minutes)}m"
    return f"{round(minutes * 60)}s"


def rate_window(config: Config) -> str:
    """The range of every rate(): at least four scrapes, and never under a minute."""
    seconds = max(60, 4 * config.prometheus.scrape_interval_seconds)
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def percent(ratio: float) -> str:
    """0.9 -> '90' (rounded: 0.9 * 100 is 90.00000000000001 in floating point)."""
    return number(round(ratio * 100, 6))


def _expr(text: str) -> str:
    """One-line expressions stay inline; longer ones become YAML blocks ending in a newline."""
    text = text.strip()
    return text + "\n" if "\n" in text else text


def record(name: str, expr: str) -> dict:
    return {"record": name, "expr": _expr(expr)}


def alert(
    name: str,
    expr: str,
    *,
    for_minutes: float,
    severity: str,
    summary: str,
    description: str,
) -> dict:
    return {
        "alert": name,
        "expr": _expr(expr),
        "for": duration(for_minutes),
        "labels": {"severity": severity},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{RUNBOOK}#{name.lower()}",
        },
    }


# --- node: the exporter's node_exporter-named metrics ------------------------------------


def node_recording_rules(config: Config) -> list[dict]:
    w = rate_window(config)
    return [
        record(
            "node:memory_available:ratio",
            """
# Linux: MemAvailable, the kernel's own estimate of memory usable without swapping.
node_memory_MemAvailable_bytes{job="node"} / node_memory_MemTotal_bytes{job="node"}
or
# macOS has no MemAvailable: free + inactive pages, the same sum psutil reports as
# `available` on macOS. Purgeable pages are left out: they are counted inside active and
# inactive already.
(node_memory_free_bytes{job="node"} + node_memory_inactive_bytes{job="node"})
  / node_memory_total_bytes{job="node"}
""",
        ),
        record(
            "node:cpu_utilisation:ratio",
            f"""
# Busy = not idle, averaged over all cores. macOS has user/nice/system/idle only, Linux
# also iowait/irq/steal; "not idle" means the same on both.
1 - avg without (cpu, mode) (rate(node_cpu_seconds_total{{job="node", mode="idle"}}[{w}]))
""",
        ),
        record(
            "node:load1_per_cpu:ratio",
            """
node_load1{job="node"}
  / count without (cpu, mode) (node_cpu_seconds_total{job="node", mode="idle"})
""",
        ),
        record(
            "node_device:network_receive_bytes:rate",
            f'rate(node_network_receive_bytes_total{{job="node", {LOOPBACK}}}[{w}])',
        ),
        record(
            "node_device:network_transmit_bytes:rate",
            f'rate(node_network_transmit_bytes_total{{job="node", {LOOPBACK}}}[{w}])',
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
    rate(node_network_receive_errs_total{{job="node", {LOOPBACK}}}[{w}])
  + rate(node_network_transmit_errs_total{{job="node", {LOOPBACK}}}[{w}])
)
/
(
    rate(node_network_receive_packets_total{{job="node", {LOOPBACK}}}[{w}])
  + rate(node_network_transmit_packets_total{{job="node", {LOOPBACK}}}[{w}])
)
""",
        ),
        record(
            "node_device:network_utilisation:ratio",
            """
# The busier direction against the link speed; links of unknown speed are left out.
max without (direction) (
    label_replace(node_device:network_receive_bytes:rate, "direction", "receive", "", "")
  or
    label_replace(node_device:network_transmit_bytes:rate, "direction", "transmit", "", "")
)
/ (node_network_speed_bytes{job="node"} > 0)
""",
        ),
        record(
            "node:swap_io_bytes:rate",
            f"""
# Bytes swapped in plus out per second.
# macOS: the exporter's node_memory_swapped_{{in,out}}_bytes_total (swapins/swapouts pages).
  rate(node_memory_swapped_in_bytes_total{{job="node"}}[{w}])
+ rate(node_memory_swapped_out_bytes_total{{job="node"}}[{w}])
or
# Linux: node_exporter's /proc/vmstat page counters; 4096-byte pages.
(
    rate(node_vmstat_pswpin{{job="node"}}[{w}])
  + rate(node_vmstat_pswpout{{job="node"}}[{w}])
) * 4096
""",
        ),
        record(
            "node_mountpoint:filesystem_avail:ratio",
            """
node_filesystem_avail_bytes{job="node"} / (node_filesystem_size_bytes{job="node"} > 0)
""",
        ),
        record(
            "node:clock_skew:seconds",
            """
# The node's clock minus Prometheus' clock at the scrape (macOS has no timex offset).
node_time_seconds{job="node"} - timestamp(node_time_seconds{job="node"})
""",
        ),
    ]


def node_alerts(config: Config) -> list[dict]:
    a = config.alerts
    w = rate_window(config)
    pressure_severity = "critical" if a.memory_pressure_level == 4 else "warning"
    hours_seconds = a.filesystem_predict_full_hours * 3600
    return [
        alert(
            "NodeExporterDown",
            'up{job="node"} == 0',
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
            "NodeCPUSaturated",
            f"node:cpu_utilisation:ratio > {number(a.cpu_saturated_ratio)}",
            for_minutes=15,
            severity="warning",
            summary="A node's CPU is saturated.",
            description=(
                "{{ $labels.node }} has been {{ $value | humanizePercentage }} busy for 15 "
                f"minutes (threshold {percent(a.cpu_saturated_ratio)}%)."
            ),
        ),
        alert(
            "NodeMemoryPressure",
            f'minicluster_memory_pressure_level{{job="node"}} >= {a.memory_pressure_level}',
            for_minutes=5,
            severity=pressure_severity,
            summary="macOS reports memory pressure on a node.",
            description=(
                "{{ $labels.node }} has been at memory pressure level {{ $value }} for 5 "
                f"minutes (1 normal, 2 warn, 4 critical; threshold {a.memory_pressure_level})."
            ),
        ),
        alert(
            "NodeMemoryLow",
            f"node:memory_available:ratio < {number(a.memory_available_min_ratio)}",
            for_minutes=5,
            severity="warning",
            summary="A node is running out of available memory.",
            description=(
                "{{ $labels.node }} has only {{ $value | humanizePercentage }} of its memory "
                f"available (threshold {percent(a.memory_available_min_ratio)}%)."
            ),
        ),
        alert(
            "NodeFilesystemAlmostFull",
            f"""
node_mountpoint:filesystem_avail:ratio < {number(a.filesystem_free_min_ratio)}
and
node_filesystem_readonly{{job="node"}} == 0
""",
            for_minutes=5,
            severity="critical",
            summary="A filesystem is almost full.",
            description=(
                "{{ $labels.mountpoint }} on {{ $labels.node }} has "
                "{{ $value | humanizePercentage }} space left "
                f"(threshold {percent(a.filesystem_free_min_ratio)}%)."
            ),
        ),
        alert(
            "NodeFilesystemFillingUp",
            f"""
predict_linear(node_filesystem_avail_bytes{{job="node"}}[6h], {hours_seconds}) < 0
# A mostly empty disk that fills fast is not yet worth a page.
and
node_mountpoint:filesystem_avail:ratio < 0.4
and
node_filesystem_readonly{{job="node"}} == 0
""",
            for_minutes=60,
            severity="warning",
            summary="A filesystem is predicted to fill up.",
            description=(
                "At the rate of the last 6 hours, {{ $labels.mountpoint }} on "
                f"{{{{ $labels.node }}}} will be full within {a.filesystem_predict_full_hours} "
                "hours."
            ),
        ),
        alert(
            "NodeSwapping",
            f"node:swap_io_bytes:rate > {number(a.swap_bytes_per_second)}",
            for_minutes=5,
            severity="warning",
            summary="A node is swapping.",
            description=(
                "{{ $labels.node }} has been moving {{ $value | humanize1024 }}B/s to and "
                f"from swap for 5 minutes (threshold {number(a.swap_bytes_per_second)} B/s)."
            ),
        ),
        alert(
            "NodeNetworkErrors",
            f"node_device:network_errors:ratio > {number(a.network_error_ratio)}",
            for_minutes=5,
            severity="warning",
            summary="A network interface is seeing errors.",
            description=(
                "{{ $value | humanizePercentage }} of the packets on {{ $labels.device }} of "
                f"{{{{ $labels.node }}}} are errors (threshold "
                f"{percent(a.network_error_ratio)}%)."
            ),
        ),
        alert(
            "NodeNetworkSaturated",
            f"node_device:network_utilisation:ratio > {number(a.nic_saturation_ratio)}",
            for_minutes=5,
            severity="warning",
            summary="A network interface is near its link speed.",
            description=(
                "{{ $labels.device }} on {{ $labels.node }} has run at "
                "{{ $value | humanizePercentage }} of its link speed for 5 minutes "
                f"(threshold {percent(a.nic_saturation_ratio)}%)."
            ),
        ),
        alert(
            "NodePeerUnreachable",
            'minicluster_peer_up{job="node"} == 0',
            for_minutes=2,
            severity="critical",
            summary="A node cannot reach a peer.",
            description=(
                "{{ $labels.node }} has not been able to connect to {{ $labels.peer }}'s "
                "exporter for 2 minutes: training across them will hang or fail."
            ),
        ),
        alert(
            "NodePeerSlow",
            f"""
avg_over_time(minicluster_peer_rtt_seconds{{job="node"}}[{w}])
  > {number(a.peer_rtt_max_seconds)}
and
minicluster_peer_up{{job="node"}} == 1
""",
            for_minutes=5,
            severity="warning",
            summary="The round trip between two nodes is slow.",
            description=(
                "Connecting from {{ $labels.node }} to {{ $labels.peer }} has taken "
                "{{ $value | humanizeDuration }} on average for 5 minutes "
                f"(threshold {number(a.peer_rtt_max_seconds)}s)."
            ),
        ),
        alert(
            "NodeClockSkew",
            f"abs(node:clock_skew:seconds) > {number(a.clock_skew_max_seconds)}",
            for_minutes=5,
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


# --- trainer: per-rank metrics, labels job_id/rank/node from /sd ------------------------


def trainer_recording_rules(config: Config) -> list[dict]:
    w = rate_window(config)
    return [
        record("job_rank:trainer_steps:rate", f'rate(trainer_steps_total{{job="trainer"}}[{w}])'),
        record(
            "job_rank:trainer_samples:rate", f'rate(trainer_samples_total{{job="trainer"}}[{w}])'
        ),
        record(
            "job:trainer_samples:sum_rate",
            "sum by (job_id) (job_rank:trainer_samples:rate)",
        ),
        record(
            "job_rank:trainer_phase_seconds_per_step:ratio",
            f"""
rate(trainer_phase_seconds_total{{job="trainer"}}[{w}])
  / ignoring (phase) group_left
rate(trainer_steps_total{{job="trainer"}}[{w}])
""",
        ),
        record(
            "job_rank:trainer_comm_fraction:ratio",
            f"""
# Communication is the all-reduce plus, on MPS, staging gradients to and from the CPU
# for it. The trainer's phases partition the step: `comm` is the all-reduce time that
# backward did not overlap, so comm (+ staging) over the step time is the share of the
# step spent waiting on the network.
sum without (phase) (rate({COMM_PHASES}[{w}]))
  /
rate(trainer_step_duration_seconds_sum{{job="trainer"}}[{w}])
""",
        ),
        record(
            "job:trainer_comm_fraction:min",
            """
# The fraction the least-communicating rank spends: the others also wait there for the
# slowest rank, which is a straggler's cost, not the network's.
min by (job_id) (job_rank:trainer_comm_fraction:ratio)
""",
        ),
        record(
            "job_rank:trainer_compute_seconds_per_step:ratio",
            f"""
# Time a rank spends on its own work per step: step time less communication. In
# synchronous DDP every rank takes the same number of steps per second; a slow rank
# shows up as more compute time here while the others spend that time waiting in comm.
(
    rate(trainer_step_duration_seconds_sum{{job="trainer"}}[{w}])
  - sum without (phase) (rate({COMM_PHASES}[{w}]))
)
/ rate(trainer_steps_total{{job="trainer"}}[{w}])
""",
        ),
        record(
            "job_rank:trainer_straggler:ratio",
            """
# A rank's speed over the median rank's speed (speed = 1 / compute seconds per step):
# 1 is typical, 0.5 means half as fast as the median rank.
quantile by (job_id) (0.5, job_rank:trainer_compute_seconds_per_step:ratio)
  / on (job_id) group_right
job_rank:trainer_compute_seconds_per_step:ratio
""",
        ),
        record(
            "job:trainer_eta:seconds",
            """
max by (job_id) (
    (trainer_target_steps{job="trainer"} - trainer_steps_total{job="trainer"})
  / (job_rank:trainer_steps:rate > 0)
)
""",
        ),
        record(
            "job_rank:trainer_allreduce_bytes:rate",
            f'rate(trainer_allreduce_bytes_total{{job="trainer"}}[{w}])',
        ),
        record(
            "job_rank:trainer_allreduce_bytes_per_step:ratio",
            f"""
rate(trainer_allreduce_bytes_total{{job="trainer"}}[{w}])
  / rate(trainer_steps_total{{job="trainer"}}[{w}])
""",
        ),
        record(
            "job_rank:trainer_allreduce_busbw:bytes_per_second",
            f"""
# Bus bandwidth of a ring all-reduce: bytes / all-reduce seconds (the algorithm
# bandwidth) times 2(n-1)/n, n the ranks of the job; comparable to the link speed.
(
    rate(trainer_allreduce_bytes_total{{job="trainer"}}[{w}])
  / rate(trainer_allreduce_seconds_total{{job="trainer"}}[{w}])
)
* on (job_id) group_left ()
(
  2 * (count by (job_id) (trainer_steps_total{{job="trainer"}}) - 1)
    / count by (job_id) (trainer_steps_total{{job="trainer"}})
)
""",
        ),
    ]


def trainer_alerts(config: Config) -> list[dict]:
    a = config.alerts
    stalled = a.trainer_stalled_minutes
    memory = stalled + RANK_MEMORY_MINUTES
    rules = [
        alert(
            "TrainerStalled",
            f"""
time() - trainer_last_step_timestamp_seconds{{job="trainer"}} > {number(stalled * 60)}
# Up and not finished: a finished rank lingering, or a rank before its first step, is
# not stalled; a rank that does not answer is TrainerRankDown.
and trainer_last_step_timestamp_seconds{{job="trainer"}} > 0
and trainer_job_finished{{job="trainer"}} == 0
and up{{job="trainer"}} == 1
""",
            for_minutes=min(1, stalled),
            severity="critical",
            summary="A training rank makes no progress.",
            description=(
                "Rank {{ $labels.rank }} of job {{ $labels.job_id }} on {{ $labels.node }} "
                "answers but has taken no step for {{ $value | humanizeDuration }} "
                f"(threshold {duration(stalled)})."
            ),
        ),
        alert(
            "TrainerRankDown",
            f"""
# Ranks discovered lately ...
max_over_time(up{{job="trainer"}}[{duration(memory)}])
# ... that do not answer now (down, or gone from /sd) ...
unless on (job_id, rank) (up{{job="trainer"}} == 1)
# ... and whose job had not finished: a normal end sets trainer_job_finished to 1 and
# lingers long enough to be scraped before the rank goes away.
unless on (job_id, rank)
  (max_over_time(trainer_job_finished{{job="trainer"}}[{duration(memory)}]) == 1)
""",
            for_minutes=stalled,
            severity="critical",
            summary="A training rank went away before its job finished.",
            description=(
                "Rank {{ $labels.rank }} of job {{ $labels.job_id }} on {{ $labels.node }} "
                f"({{{{ $labels.instance }}}}) has not answered for {duration(stalled)} and "
                "its job had not finished."
            ),
        ),
        alert(
            "TrainerStraggler",
            f"job_rank:trainer_straggler:ratio < {number(a.straggler_ratio)}",
            for_minutes=10,
            severity="warning",
            summary="One rank is slower than the others.",
            description=(
                "Rank {{ $labels.rank }} of job {{ $labels.job_id }} on {{ $labels.node }} "
                "computes at {{ $value | humanizePercentage }} of the median rank's speed "
                f"(threshold {percent(a.straggler_ratio)}%); every other rank waits "
                "for it at each all-reduce."
            ),
        ),
        alert(
            "TrainerCommunicationBound",
            f"job:trainer_comm_fraction:min > {number(a.comm_fraction_max)}",
            for_minutes=10,
            severity="warning",
            summary="A training job spends most of its time communicating.",
            description=(
                "Every rank of job {{ $labels.job_id }} spends at least "
                "{{ $value | humanizePercentage }} of its step time in all-reduce "
                f"(threshold {percent(a.comm_fraction_max)}%): the link, not the "
                "compute, sets the pace."
            ),
        ),
        alert(
            "TrainerLossNotFinite",
            """
trainer_loss{job="trainer"} != trainer_loss{job="trainer"}
or
abs(trainer_loss{job="trainer"}) == Inf
""",
            for_minutes=0,
            severity="critical",
            summary="A training rank's loss is NaN or infinite.",
            description=(
                "The loss of rank {{ $labels.rank }} of job {{ $labels.job_id }} on "
                "{{ $labels.node }} is {{ $value }}: the run has diverged and every "
                "further step is wasted."
            ),
        ),
    ]
    if config.trainer.checkpoint_interval > 0:
        overdue = a.checkpoint_overdue_minutes
        rules.append(
            alert(
                "TrainerCheckpointOverdue",
                f"""
# The trainer sets the timestamp to its start until the first checkpoint.
time() - trainer_last_checkpoint_timestamp_seconds{{job="trainer"}} > {number(overdue * 60)}
and trainer_job_finished{{job="trainer"}} == 0
""",
                for_minutes=5,
                severity="warning",
                summary="A training rank has not written a checkpoint for too long.",
                description=(
                    "Rank {{ $labels.rank }} of job {{ $labels.job_id }} on "
                    "{{ $labels.node }} last checkpointed {{ $value | humanizeDuration }} "
                    f"ago (threshold {overdue} minutes): a failure now loses that much work."
                ),
            )
        )
    rules.append(
        alert(
            "TrainerRankRestarted",
            f"""
# A rank process that started within the window and is not torchrun's first attempt.
trainer_restarts_total{{job="trainer"}} > 0
and
time() - process_start_time_seconds{{job="trainer"}} < {RESTART_WINDOW_MINUTES * 60}
""",
            for_minutes=0,
            severity="warning",
            summary="A training job restarted its ranks.",
            description=(
                "Rank {{ $labels.rank }} of job {{ $labels.job_id }} on {{ $labels.node }} "
                "is on restart {{ $value }} of torchrun's max_restarts "
                f"({config.trainer.max_restarts})."
            ),
        )
    )
    return rules


# --- the stack itself ------------------------------------------------------------------------


def stack_alerts(config: Config) -> list[dict]:
    return [
        alert(
            "Watchdog",
            "vector(1)",
            for_minutes=0,
            severity="none",
            summary="Always firing: proves that alerts reach Alertmanager and the webhook.",
            description=(
                "This alert fires all the time (value {{ $value }}). If the webhook stops "
                "receiving it, Prometheus, Alertmanager or the path between them is broken."
            ),
        ),
        alert(
            "PrometheusTargetDown",
            # node and trainer targets have their own alerts with more to say.
            'up{job!~"node|trainer"} == 0',
            for_minutes=5,
            severity="warning",
            summary="A monitoring service is not answering Prometheus.",
            description=(
                "{{ $labels.job }} at {{ $labels.instance }} on {{ $labels.node }} has not "
                "answered Prometheus for 5 minutes."
            ),
        ),
    ]


def rule_files(config: Config) -> dict[str, dict]:
    """File name -> rule file document, for DIR/prometheus/rules/."""
    return {
        "node.yml": {
            "groups": [
                {"name": "node.rules", "rules": node_recording_rules(config)},
                {"name": "node.alerts", "rules": node_alerts(config)},
            ]
        },
        "trainer.yml": {
            "groups": [
                {"name": "trainer.rules", "rules": trainer_recording_rules(config)},
                {"name": "trainer.alerts", "rules": trainer_alerts(config)},
            ]
        },
        "stack.yml": {"groups": [{"name": "stack.alerts", "rules": stack_alerts(config)}]},
    }


def render_rule_files(config: Config) -> dict[str, str]:
    header = (
        f"Rendered by `minicluster render` from the config of cluster {config.cluster.name!r}."
        "\nDo not edit: change config.yaml (alerts:) or minicluster/render/rules.py."
    )
    return {name: dump_yaml(doc, header) for name, doc in rule_files(config).items()}


def all_rules(config: Config) -> list[dict]:
    return [
        rule
        for doc in rule_files(config).values()
        for group in doc["groups"]
        for rule in group["rules"]
    ]
