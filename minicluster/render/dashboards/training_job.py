"""Training job: progress, throughput, where step time goes, all-reduce, stragglers."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders

from minicluster.core import metrics
from minicluster.core.config import Config
from minicluster.render.dashboards.common import (
    DATASOURCE,
    new_dashboard,
    query_variable,
    row,
    stat_panel,
    table_panel,
    target,
    timeseries_panel,
)

UID = "minicluster-training-job"
TITLE = "minicluster / Training job"
JOB = 'job_id=~"$job_id"'
RANKS = 'job_id=~"$job_id", node=~"$node", rank=~"$rank"'
# The same selections on the ranks' own series, with the scrape job's label.
JOB_SERIES = f"{metrics.TRAINER}, {JOB}"
RANK_SERIES = f"{metrics.TRAINER}, {RANKS}"
RANK_LEGEND = "rank {{rank}} ({{node}})"


def _annotation(name: str, color: str, expr: str, title: str):
    # A series that is 1 only in the minute the event happened; Grafana marks its start.
    return (
        dashboard_builders.AnnotationQuery()
        .name(name)
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color(color)
        .expr(expr)
        .step("1m")
        .title_format(title)
        .text_format("job {{job_id}}")
    )


def build(config: Config):
    a = config.alerts
    return (
        new_dashboard(
            UID,
            TITLE,
            "One training job: progress, per-rank throughput, step time, all-reduce, stragglers.",
        )
        .with_variable(
            query_variable(
                "job_id", "Job", f"label_values({metrics.STEPS}{{{metrics.TRAINER}}}, job_id)"
            )
        )
        .with_variable(
            query_variable("node", "Node", f"label_values({metrics.STEPS}{{{JOB_SERIES}}}, node)")
        )
        .with_variable(
            query_variable(
                "rank",
                "Rank",
                f'label_values({metrics.STEPS}{{{JOB_SERIES}, node=~"$node"}}, rank)',
            )
        )
        .annotation(
            _annotation(
                "Job start",
                "green",
                f"group by (job_id) ({metrics.STEPS}{{{JOB_SERIES}}})"
                " unless group by (job_id)"
                f" ({metrics.STEPS}{{{JOB_SERIES}}} offset 1m)",
                "job start",
            )
        )
        .annotation(
            _annotation(
                "Job end",
                "blue",
                f"group by (job_id) ({metrics.JOB_FINISHED}{{{JOB_SERIES}}} == 1)"
                " unless group by (job_id)"
                f" ({metrics.JOB_FINISHED}{{{JOB_SERIES}}} offset 1m == 1)",
                "job end",
            )
        )
        .with_row(row("Progress"))
        .with_panel(
            stat_panel(
                "Progress",
                [target(f"max by (job_id) ({metrics.PROGRESS}{{{JOB_SERIES}}})")],
                unit="percentunit",
                description="Steps done over the steps the job will run.",
                steps=((None, "blue"), (1, "green")),
            )
        )
        .with_panel(
            stat_panel(
                "Time to finish",
                [target(f"job:trainer_eta:seconds{{{JOB}}}")],
                unit="s",
                description="Steps left over the current steps per second of the slowest rank.",
            )
        )
        .with_panel(
            stat_panel(
                "Samples per second (job)",
                [target(f"job:trainer_samples:sum_rate{{{JOB}}}")],
                unit="none",
                description="Training samples per second, all ranks together.",
            )
        )
        .with_panel(
            stat_panel(
                "Ranks answering",
                [target(f"count by (job_id) (up{{{JOB_SERIES}}} == 1)")],
                unit="none",
                description="Ranks whose metrics endpoint answered the last scrape.",
            )
        )
        .with_row(row("Throughput"))
        .with_panel(
            timeseries_panel(
                "Steps per second",
                [target(f"job_rank:trainer_steps:rate{{{RANKS}}}", RANK_LEGEND)],
                unit="none",
                description="Optimizer steps per second, per rank.",
                width=8,
                minimum=0,
            )
        )
        .with_panel(
            timeseries_panel(
                "Samples per second",
                [target(f"job_rank:trainer_samples:rate{{{RANKS}}}", RANK_LEGEND)],
                unit="none",
                description="Training samples per second, per rank.",
                width=8,
                minimum=0,
            )
        )
        .with_panel(
            timeseries_panel(
                "Loss",
                [target(f"{metrics.LOSS}{{{RANK_SERIES}}}", RANK_LEGEND)],
                unit="none",
                description="Training loss at the last log step, per rank.",
                width=8,
            )
        )
        .with_row(row("Step time"))
        .with_panel(
            timeseries_panel(
                "Step time by phase",
                [
                    target(
                        f"avg by (phase) ({metrics.PHASE_SECONDS_PER_STEP}{{{RANKS}}})",
                        "{{phase}}",
                    )
                ],
                unit="s",
                description=(
                    "Seconds per step in data loading, forward, backward, all-reduce (comm), "
                    "optimizer and CPU staging (MPS), averaged over the selected ranks. "
                    "The phases add up to the step: comm is the all-reduce time that "
                    "backward did not hide, and comm plus staging over the sum is the "
                    "communication fraction."
                ),
                width=8,
                minimum=0,
            )
        )
        .with_panel(
            timeseries_panel(
                "Step duration",
                [
                    target(
                        "histogram_quantile(0.5, sum by (le, rank, node) (rate("
                        f"{metrics.STEP_DURATION}_bucket{{{RANK_SERIES}}}"
                        "[$__rate_interval])))",
                        "p50 " + RANK_LEGEND,
                    ),
                    target(
                        "histogram_quantile(0.9, sum by (le, rank, node) (rate("
                        f"{metrics.STEP_DURATION}_bucket{{{RANK_SERIES}}}"
                        "[$__rate_interval])))",
                        "p90 " + RANK_LEGEND,
                        ref="B",
                    ),
                ],
                unit="s",
                description="Median and 90th percentile of the whole step, per rank.",
                width=8,
                minimum=0,
            )
        )
        .with_panel(
            timeseries_panel(
                "Communication fraction",
                [target(f"{metrics.RANK_COMM_FRACTION}{{{RANKS}}}", RANK_LEGEND)],
                unit="percentunit",
                description="Share of each rank's step time spent in all-reduce and staging.",
                width=8,
                minimum=0,
                maximum=1,
                threshold=a.comm_fraction_max,
            )
        )
        .with_row(row("All-reduce"))
        .with_panel(
            timeseries_panel(
                "All-reduce bytes per second",
                [target(f"job_rank:trainer_allreduce_bytes:rate{{{RANKS}}}", RANK_LEGEND)],
                unit="Bps",
                description="Gradient bytes each rank all-reduces per second.",
                width=8,
                minimum=0,
            )
        )
        .with_panel(
            timeseries_panel(
                "All-reduce bucket latency",
                [
                    target(
                        "histogram_quantile(0.5, sum by (le, rank, node) (rate("
                        f"{metrics.ALLREDUCE_BUCKET}_bucket{{{RANK_SERIES}}}"
                        "[$__rate_interval])))",
                        "p50 " + RANK_LEGEND,
                    ),
                    target(
                        "histogram_quantile(0.99, sum by (le, rank, node) (rate("
                        f"{metrics.ALLREDUCE_BUCKET}_bucket{{{RANK_SERIES}}}"
                        "[$__rate_interval])))",
                        "p99 " + RANK_LEGEND,
                        ref="B",
                    ),
                ],
                unit="s",
                description="Latency of one gradient bucket's all-reduce, per rank.",
                width=8,
                minimum=0,
            )
        )
        .with_panel(
            timeseries_panel(
                "All-reduce bus bandwidth",
                [
                    target(
                        f"job_rank:trainer_allreduce_busbw:bytes_per_second{{{RANKS}}}",
                        RANK_LEGEND,
                    )
                ],
                unit="Bps",
                description=(
                    "Bytes over all-reduce seconds times 2(n-1)/n: comparable to link speed."
                ),
                width=8,
                minimum=0,
            )
        )
        .with_row(row("Stragglers"))
        .with_panel(
            table_panel(
                "Ranks",
                [
                    target(f"job_rank:trainer_straggler:ratio{{{RANKS}}}", instant=True),
                    target(
                        f"job_rank:trainer_compute_seconds_per_step:ratio{{{RANKS}}}",
                        instant=True,
                        ref="B",
                    ),
                    target(
                        f"{metrics.RANK_COMM_FRACTION}{{{RANKS}}}",
                        instant=True,
                        ref="C",
                    ),
                    target(f"job_rank:trainer_steps:rate{{{RANKS}}}", instant=True, ref="D"),
                ],
                description=(
                    "Speed relative to the median rank (below "
                    f"{a.straggler_ratio:g} alerts), compute seconds per step, "
                    "communication fraction and steps per second."
                ),
                width=24,
                rename={
                    "Value #A": "speed vs median",
                    "Value #B": "compute s/step",
                    "Value #C": "comm fraction",
                    "Value #D": "steps/s",
                },
                hide_columns=("Time", "__name__", "instance", "job", "local_rank"),
            )
        )
        .with_row(row("Restarts and checkpoints"))
        .with_panel(
            stat_panel(
                "Restarts",
                [target(f"max by (job_id) ({metrics.RESTARTS}{{{JOB_SERIES}}})")],
                unit="none",
                description=(
                    f"torchrun restarts of this job so far (max_restarts is "
                    f"{config.trainer.max_restarts})."
                ),
                width=8,
                height=8,
                steps=((None, "green"), (1, "orange")),
            )
        )
        .with_panel(
            timeseries_panel(
                "Last checkpoint step",
                [target(f"{metrics.LAST_CHECKPOINT_STEP}{{{RANK_SERIES}}}", RANK_LEGEND)],
                unit="none",
                description="The step of each rank's newest checkpoint.",
                width=8,
                minimum=0,
            )
        )
        .with_panel(
            timeseries_panel(
                "Checkpoint duration",
                [
                    target(
                        f"{metrics.CHECKPOINT_DURATION}{{{RANK_SERIES}}}",
                        RANK_LEGEND,
                    )
                ],
                unit="s",
                description="How long writing the last checkpoint took, per rank.",
                width=8,
                minimum=0,
            )
        )
    )
