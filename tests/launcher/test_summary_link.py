"""The summary names the link its bandwidth is compared with: loopback when every rank ran
on this machine, "link speed unknown" only when a real link did not say its speed."""

from __future__ import annotations

from rich.console import Console

from minicluster.launcher.summary import summarize, summary_table
from tests.launcher.test_summary import RANKS


def _all_reduce_line(loopback: bool) -> str:
    s = summarize(RANKS, world_size=2, target_steps=10, wall_seconds=7.0, link_speed_bytes=None)
    console = Console(record=True, width=200)
    console.print(summary_table("j", "succeeded", s, loopback=loopback))
    line = next(line for line in console.export_text().splitlines() if "all-reduce" in line)
    return line.strip("│ ")


def test_a_loopback_job_says_loopback():
    line = _all_reduce_line(loopback=True)
    assert line.endswith("bus bandwidth 500.00 kB/s (link: loopback)")
    assert "unknown" not in line


def test_a_real_link_without_a_speed_says_unknown():
    assert _all_reduce_line(loopback=False).endswith("(link speed unknown)")
