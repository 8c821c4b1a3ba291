"""Progress from the ranks' step lines: done, slowest rank and its lag."""

from __future__ import annotations

from rich.console import Console

from minicluster.core.logformat import LogLine
from minicluster.launcher.progress import JobProgress, RankSteps


def _step(rank: int, step: int, target: int = 100) -> LogLine:
    return LogLine(
        "2026-11-28T15:40:00.000+00:00",
        "n",
        rank,
        "INFO",
        f"step step={step} target={target} loss=1",
    )


def test_progress_is_the_slowest_ranks_and_lag_is_the_gap_to_the_fastest():
    ranks = RankSteps(world_size=3, target_steps=100)
    assert ranks.observe(_step(0, 40)) and ranks.observe(_step(2, 30))
    assert ranks.completed == 0  # rank 1 has not reported: nothing is done everywhere
    assert ranks.describe_lag() == "2/3 ranks reporting"
    ranks.observe(_step(1, 20))
    assert ranks.completed == 20
    assert ranks.slowest == (1, 20)
    assert ranks.describe_lag() == "slowest rank 1: 20 steps behind"
    for rank in range(3):
        ranks.observe(_step(rank, 50))
    assert ranks.describe_lag() == "3 ranks in step"


def test_a_restarted_rank_counts_from_where_it_resumed():
    ranks = RankSteps(world_size=1, target_steps=100)
    ranks.observe(_step(0, 60))
    ranks.observe(_step(0, 50))  # resumed from the step-50 checkpoint
    assert ranks.completed == 50


def test_start_lines_set_the_world_size_and_other_lines_are_ignored():
    ranks = RankSteps(world_size=2, target_steps=10)
    line = LogLine("t", "n", 0, "INFO", "start job_id=j world_size=4 backend=gloo")
    assert not ranks.observe(line)
    assert ranks.world_size == 4
    assert not ranks.observe(LogLine("t", "n", 0, "INFO", "checkpoint step=5"))


def test_the_bar_shows_percent_rate_and_lag():
    console = Console(record=True, width=120, force_terminal=False)
    with JobProgress("job-x", 10, 2, console) as progress:
        progress.observe(_step(0, 5, 10))
        progress.observe(_step(1, 3, 10))
    text = console.export_text()
    assert "job-x" in text and "30%" in text and "slowest rank 1: 2 steps behind" in text
    assert "steps/s" in text
