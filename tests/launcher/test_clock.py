"""Clock offsets: the estimate, and when an offset is large enough to reorder lines."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from minicluster.launcher.clock import Offset, best_estimate, offset_note, reordered_pairs
from minicluster.launcher.stream import read_rank_file

FIXTURES = Path(__file__).parent / "fixtures"


def _lines():
    return read_rank_file(FIXTURES / "rank0.log") + read_rank_file(FIXTURES / "rank1.log")


def test_the_shortest_round_trip_gives_the_offset():
    # (sent, remote clock, received): the node runs 0.2 s ahead; the 2nd exchange is direct.
    exchanges = [(10.0, 10.35, 10.3), (11.0, 11.205, 11.01), (12.0, 12.4, 12.2)]
    offset, rtt = best_estimate(exchanges)
    assert offset == pytest.approx(0.2)
    assert rtt == pytest.approx(0.01)


def test_small_offsets_reorder_nothing_and_get_no_note():
    # The closest neighbours from different nodes are 50 ms apart (01.000 red, 01.050 yellow).
    offsets = [Offset("mini-red", 0.0, 0.001), Offset("mini-yellow", 0.04, 0.001)]
    assert reordered_pairs(_lines(), {o.node: o.seconds for o in offsets}) == 0
    assert offset_note(_lines(), offsets) is None


def test_an_offset_larger_than_the_gap_between_nodes_is_noted():
    # mini-yellow's clock 120 ms ahead: its 01.050 line really happened at 00.930, before
    # mini-red's 01.000; and its 02.400 at 02.280, so red's 02.000 stays before it.
    offsets = [Offset("mini-red", 0.0, 0.001), Offset("mini-yellow", 0.12, 0.002)]
    assert reordered_pairs(_lines(), {o.node: o.seconds for o in offsets}) == 1
    note = offset_note(_lines(), offsets)
    assert note is not None
    assert "mini-yellow +120.0 ms" in note and "1 neighbouring lines" in note
    # 600 ms behind: yellow's 02.400 really happened at 03.000, after red's 02.500.
    behind = {"mini-red": 0.0, "mini-yellow": -0.6}
    assert reordered_pairs(_lines(), behind) == 1


def test_offsets_below_the_measurement_error_or_a_millisecond_get_no_note():
    """Two nodes whose lines fall in the same millisecond: a measured 0.04 ms offset, or a
    0.3 ms one from an exchange with a 2 ms round trip, cannot tell their order."""
    lines = read_rank_file(FIXTURES / "rank0.log") + read_rank_file(FIXTURES / "rank1.log")
    same_ms = [line for line in lines if line.node == "mini-red"][:1]
    twin = [dataclasses.replace(line, node="mini-yellow", seq=line.seq + 1) for line in same_ms]
    for offsets in (
        [Offset("mini-red", -0.00002, 0.0001), Offset("mini-yellow", 0.00004, 0.0001)],
        [Offset("mini-red", 0.0, 0.001), Offset("mini-yellow", 0.0003, 0.002)],
    ):
        assert offset_note(same_ms + twin, offsets) is None
