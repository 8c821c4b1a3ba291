"""On the live stack: the run summary's communication fraction, computed from the ranks'
summary lines, is the recording rule's figure for the same job, per rank and for the job.

The recording rules rate over a window of at least a minute; over a whole job, the same
definition reads the counters at the job's end (they start at 0 with the job), which is
what the summary holds. Both sides come from core.metrics, so they can only differ by the
rounding of the summary line's numbers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from minicluster.core.logformat import parse_line
from minicluster.core.metrics import (
    JOB_COMM_FRACTION,
    JOB_COMM_FRACTION_AGGREGATION,
    JOB_FINISHED,
    PHASES,
    RANK_COMM_FRACTION,
    TRAINER,
    comm_fraction_promql,
    rate_over,
)
from minicluster.launcher.summary import rank_summaries, summarize
from minicluster.render import rules
from tests.stack.live_stack import start_job, stop_job
from tests.support import wait_until

pytestmark = pytest.mark.e2e

STEPS = 200  # about 10 s at --step-sleep 0.05, a few scrapes at 1 s


def _rank_logs(live, job_id: str) -> list:
    lines = []
    for node in live.config.nodes:
        log_dir = Path(live.config.trainer.resolve_dir(live.config.trainer.log_dir, node))
        for path in sorted((log_dir / job_id).glob("rank*.log")):
            parsed = (parse_line(text) for text in path.read_text().splitlines())
            lines += [line for line in parsed if line]
    return lines


def _by_rank(results: list[dict]) -> dict[str, float]:
    return {r["metric"].get("rank", "job"): float(r["value"][1]) for r in results}


def test_the_summary_comm_fraction_is_the_recording_rules(live):
    # The rules in Prometheus are this very definition over the rules' rate window.
    window = rules.rate_window(live.config)
    by_name = {r.get("record"): r["expr"] for r in rules.all_rules(live.config)}
    assert comm_fraction_promql(rate_over(window)) in by_name[RANK_COMM_FRACTION]
    assert f"{JOB_COMM_FRACTION_AGGREGATION} ({RANK_COMM_FRACTION})" in by_name[JOB_COMM_FRACTION]

    job_id = f"summary-{os.getpid()}"
    agents = start_job(
        live.config, live.config_file, job_id, live.logs, steps=STEPS, fresh_ports=True
    )
    try:
        wait_until(
            lambda: all(agent.poll() is not None for agent in agents),
            f"job {job_id} to finish",
            timeout=300,
            interval=1,
        )
    finally:
        stop_job(agents)
    assert [agent.returncode for agent in agents] == [0, 0]

    selector = f'{TRAINER}, job_id="{job_id}"'
    # Both ranks were scraped after their last step (they linger with /metrics up).
    live.wait_for_series(
        f"max_over_time({JOB_FINISHED}{{{selector}}}[10m]) == 1", timeout=60, minimum=2
    )
    # The job's totals: a counter's last value (a range selector skips the staleness
    # marker written when the rank went away).
    whole_job = comm_fraction_promql(lambda series: f"last_over_time({series}[10m])", selector)
    per_rank = _by_rank(live.query(whole_job))
    (job,) = live.query(f"{JOB_COMM_FRACTION_AGGREGATION} ({whole_job})")

    ranks = rank_summaries(_rank_logs(live, job_id))
    assert sorted(ranks) == [0, 1]
    summary = summarize(
        ranks, world_size=2, target_steps=STEPS, wall_seconds=0.0, link_speed_bytes=None
    )
    assert summary["steps"] == STEPS

    # Prometheus holds the exact float64 counters; the summary line rounds each phase's
    # seconds to 6 decimals, so a fraction can be off by at most (a rounding of 0.5 us in
    # each phase, in the numerator and the denominator) over the rank's total seconds.
    totals = {r: sum(ranks[r]["phase_seconds"][p] for p in PHASES) for r in ranks}
    tolerance = 2 * len(PHASES) * 0.5e-6 / min(totals.values())
    assert 0 < summary["comm_fraction"] < 1
    for rank, fraction in summary["comm_fraction_by_rank"].items():
        assert fraction == pytest.approx(per_rank[rank], abs=tolerance), rank
    assert summary["comm_fraction"] == pytest.approx(float(job["value"][1]), abs=tolerance)
