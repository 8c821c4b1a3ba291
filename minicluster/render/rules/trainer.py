"""Trainer rules: per-rank metrics (labels job_id, rank, node from the exporters' /sd)
turned into per-rank and per-job rates and ratios, and the alerts on a job's health.
The ratios' PromQL comes from core.metrics, which also gives the run summary its figures."""

from __future__ import annotations

from textwrap import indent

from minicluster.core.config import Config
from minicluster.core.metrics import (
    ALLREDUCE_BYTES,
    ALLREDUCE_SECONDS,
    JOB_COMM_FRACTION,
    JOB_COMM_FRACTION_AGGREGATION,
    JOB_FINISHED,
    LAST_CHECKPOINT_TIMESTAMP,
    LAST_STEP_TIMESTAMP,
    LOSS,
    PHASE_SECONDS,
    PHASE_SECONDS_PER_STEP,
    RANK_COMM_FRACTION,
    RESTARTS,
    SAMPLES,
    STEPS,
    TARGET_STEPS,
    TRAINER,
    busbw_factor_promql,
    comm_fraction_promql,
    compute_seconds_per_step_promql,
    rate_over,
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

# A rank that restarted within this long raises TrainerRankRestarted.
RESTART_WINDOW_MINUTES = 15
# How long a rank that vanished is remembered by TrainerRankDown (beyond its `for:`).
RANK_MEMORY_MINUTES = 30


def recording_rules(config: Config) -> list[dict]:
    w = rate_window(config)
    ranks = f"count by (job_id) ({STEPS}{{{TRAINER}}})"
    return [
        record("job_rank:trainer_steps:rate", f"rate({STEPS}{{{TRAINER}}}[{w}])"),
        record("job_rank:trainer_samples:rate", f"rate({SAMPLES}{{{TRAINER}}}[{w}])"),
        record(
            "job:trainer_samples:sum_rate",
            "sum by (job_id) (job_rank:trainer_samples:rate)",
        ),
        record(
            PHASE_SECONDS_PER_STEP,
            f"""
rate({PHASE_SECONDS}{{{TRAINER}}}[{w}])
  / ignoring (phase) group_left
rate({STEPS}{{{TRAINER}}}[{w}])
""",
        ),
        record(
            RANK_COMM_FRACTION,
            f"""
# Communication is the all-reduce plus, on MPS, staging gradients to and from the CPU
# for it. The trainer's phases partition the step: `comm` is the all-reduce time that
# backward did not overlap, so comm (+ staging) over all phases is the share of the
# step spent waiting on the network.
{comm_fraction_promql(rate_over(w))}
""",
        ),
        record(
            JOB_COMM_FRACTION,
            f"""
# The fraction the least-communicating rank spends: the others also wait there for the
# slowest rank, which is a straggler's cost, not the network's.
{JOB_COMM_FRACTION_AGGREGATION} ({RANK_COMM_FRACTION})
""",
        ),
        record(
            "job_rank:trainer_compute_seconds_per_step:ratio",
            f"""
# Time a rank spends on its own work per step: the phases that are not communication.
# In synchronous DDP every rank takes the same number of steps per second; a slow rank
# shows up as more compute time here while the others spend that time waiting in comm.
{compute_seconds_per_step_promql(rate_over(w))}
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
            f"""
max by (job_id) (
    ({TARGET_STEPS}{{{TRAINER}}} - {STEPS}{{{TRAINER}}})
  / (job_rank:trainer_steps:rate > 0)
)
""",
        ),
        record(
            "job_rank:trainer_allreduce_bytes:rate",
            f"rate({ALLREDUCE_BYTES}{{{TRAINER}}}[{w}])",
        ),
        record(
            "job_rank:trainer_allreduce_bytes_per_step:ratio",
            f"""
rate({ALLREDUCE_BYTES}{{{TRAINER}}}[{w}])
  / rate({STEPS}{{{TRAINER}}}[{w}])
""",
        ),
        record(
            "job_rank:trainer_allreduce_busbw:bytes_per_second",
            f"""
# Bus bandwidth of a ring all-reduce: bytes / all-reduce seconds (the algorithm
# bandwidth) times 2(n-1)/n, n the ranks of the job; comparable to the link speed.
(
    rate({ALLREDUCE_BYTES}{{{TRAINER}}}[{w}])
  / rate({ALLREDUCE_SECONDS}{{{TRAINER}}}[{w}])
)
* on (job_id) group_left ()
(
{indent(busbw_factor_promql(ranks), "  ")}
)
""",
        ),
    ]


def alerts(config: Config) -> list[dict]:
    a = config.alerts
    stalled = a.trainer_stalled_minutes
    memory = stalled + RANK_MEMORY_MINUTES
    rules = [
        alert(
            config,
            "TrainerStalled",
            f"""
time() - {LAST_STEP_TIMESTAMP}{{{TRAINER}}} > {number(stalled * 60)}
# Up and not finished: a finished rank lingering, or a rank before its first step, is
# not stalled; a rank that does not answer is TrainerRankDown.
and {LAST_STEP_TIMESTAMP}{{{TRAINER}}} > 0
and {JOB_FINISHED}{{{TRAINER}}} == 0
and up{{{TRAINER}}} == 1
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
            config,
            "TrainerRankDown",
            f"""
# Ranks discovered lately ...
max_over_time(up{{{TRAINER}}}[{duration(memory)}])
# ... that do not answer now (down, or gone from /sd) ...
unless on (job_id, rank) (up{{{TRAINER}}} == 1)
# ... and whose job had not finished: a normal end sets {JOB_FINISHED} to 1 and
# lingers long enough to be scraped before the rank goes away.
unless on (job_id, rank)
  (max_over_time({JOB_FINISHED}{{{TRAINER}}}[{duration(memory)}]) == 1)
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
            config,
            "TrainerStraggler",
            f"job_rank:trainer_straggler:ratio < {number(a.straggler_ratio)}",
            for_minutes=a.straggler_for_minutes,
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
            config,
            "TrainerCommunicationBound",
            f"{JOB_COMM_FRACTION} > {number(a.comm_fraction_max)}",
            for_minutes=a.comm_bound_for_minutes,
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
            config,
            "TrainerLossNotFinite",
            f"""
{LOSS}{{{TRAINER}}} != {LOSS}{{{TRAINER}}}
or
abs({LOSS}{{{TRAINER}}}) == Inf
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
                config,
                "TrainerCheckpointOverdue",
                f"""
# The trainer sets the timestamp to its start until the first checkpoint.
time() - {LAST_CHECKPOINT_TIMESTAMP}{{{TRAINER}}} > {number(overdue * 60)}
and {JOB_FINISHED}{{{TRAINER}}} == 0
""",
                for_minutes=a.checkpoint_overdue_for_minutes,
                severity="warning",
                summary="A training rank has not written a checkpoint for too long.",
                description=(
                    "Rank {{ $labels.rank }} of job {{ $labels.job_id }} on "
                    "{{ $labels.node }} last checkpointed {{ $value | humanizeDuration }} "
                    f"ago (threshold {minutes_text(overdue)}): a failure now loses that "
                    "much work."
                ),
            )
        )
    rules.append(
        alert(
            config,
            "TrainerRankRestarted",
            f"""
# A rank process that started within the window and is not torchrun's first attempt.
{RESTARTS}{{{TRAINER}}} > 0
and
time() - process_start_time_seconds{{{TRAINER}}} < {RESTART_WINDOW_MINUTES * 60}
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
