"""Merging node output into one time-ordered log."""

from __future__ import annotations

from pathlib import Path

from minicluster.core.logformat import format_line, parse_line
from minicluster.launcher.stream import (
    MergedLog,
    read_merged_file,
    read_rank_file,
    tag_line,
    write_sorted,
)

FIXTURES = Path(__file__).parent / "fixtures"
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def _times(path: Path) -> list[str]:
    return [line.split(" ", 1)[0] for line in path.read_text().splitlines()]


def test_rank_lines_are_kept_verbatim_and_other_output_gets_time_and_node():
    rank_line = format_line("mini-yellow", 1, "INFO", "step step=2 target=4", ts=T0)
    kept = tag_line("mini-yellow", rank_line, arrival=T0 + 5)
    assert (
        kept.text == rank_line and kept.rank == 1 and kept.time == "2027-01-15T08:00:00.000+00:00"
    )
    other = tag_line("mini-red", "W1128 torchrun warning: OMP_NUM_THREADS", arrival=T0 + 1.25)
    assert other.text == (
        "2027-01-15T08:00:01.250+00:00 mini-red torchrun W1128 torchrun warning: OMP_NUM_THREADS"
    )
    assert other.rank is None and other.node == "mini-red"


def test_merged_log_is_in_time_order_even_when_lines_arrive_out_of_order(tmp_path):
    log = MergedLog(tmp_path / "job.log", window_seconds=2.0)
    # mini-yellow's lines arrive late (slow link), after later lines of mini-red.
    arrivals = [
        ("mini-red", 0, T0 + 0.0),
        ("mini-red", 0, T0 + 1.0),
        ("mini-yellow", 1, T0 + 0.5),
        ("mini-red", 0, T0 + 3.0),
        ("mini-yellow", 1, T0 + 2.9),
    ]
    for node, rank, ts in arrivals:
        log.add(tag_line(node, format_line(node, rank, "INFO", f"step t={ts}", ts=ts), T0 + 4))
    log.flush(now=T0 + 2.6)  # only lines older than the 2 s window are written yet
    assert _times(tmp_path / "job.log") == [
        "2027-01-15T08:00:00.000+00:00",
        "2027-01-15T08:00:00.500+00:00",
    ]
    log.close()
    times = _times(tmp_path / "job.log")
    assert len(times) == 5 and times == sorted(times)
    nodes = [line.split(" ")[1] for line in (tmp_path / "job.log").read_text().splitlines()]
    assert nodes == ["mini-red", "mini-yellow", "mini-red", "mini-yellow", "mini-red"]


def test_rank_files_merge_by_time_and_tracebacks_stay_with_their_line(tmp_path):
    lines = read_rank_file(FIXTURES / "rank0.log") + read_rank_file(FIXTURES / "rank1.log")
    merged = tmp_path / "merged.log"
    write_sorted(merged, lines)
    text = merged.read_text().splitlines()
    assert _times(merged) == sorted(_times(merged))
    assert [parse_line(t).rank for t in text if parse_line(t)] == [0, 1, 0, 1, 0, 1, 0]
    error = text.index(next(t for t in text if "ERROR step failed" in t))
    assert text[error + 1].endswith("| Traceback (most recent call last):")
    assert text[error + 2].endswith('|   File "x.py", line 1, in <module>')
    assert text[error + 1].startswith("2026-11-28T15:40:02.000+00:00 mini-red rank=0 |")


def test_a_merged_log_reads_back_with_its_torchrun_lines(tmp_path):
    path = tmp_path / "m.log"
    write_sorted(path, [tag_line("mini-red", "torchrun says hi", T0)])
    (line,) = read_merged_file(path)
    assert line.parsed is None and line.node == "mini-red" and line.text.endswith("hi")
