"""The all-reduce sweep's arithmetic, with a fake clock and a fake all-reduce."""

from __future__ import annotations

import pytest

from minicluster.bench import sweep
from minicluster.bench.sweep import KB, MB


class FakeClock:
    """Every all-reduce of `size` bytes takes size / rate seconds on this clock."""

    def __init__(self, rate: float):
        self.now, self.rate, self.calls = 0.0, rate, []

    def __call__(self) -> float:
        return self.now

    def allreduce(self, size: int) -> None:
        self.calls.append(size)
        self.now += size / self.rate


def run(world_size: int, sizes, rate=1e8, warmup=2, iters=None):
    clock = FakeClock(rate)
    rows = list(
        sweep.sweep(sizes, clock.allreduce, lambda s: s, world_size, warmup, iters, clock=clock)
    )
    return rows, clock


def test_default_sizes_run_from_4_kb_to_256_mb_in_x4_steps():
    assert sweep.SIZES[0] == 4 * KB and sweep.SIZES[-1] == 256 * MB
    assert all(b == 4 * a for a, b in zip(sweep.SIZES, sweep.SIZES[1:], strict=False))


def test_bytes_are_exactly_size_times_timed_calls():
    rows, clock = run(2, [4 * KB, 1 * MB, 64 * MB], warmup=3)
    for r in rows:
        assert r.bytes == r.size * r.calls
        assert r.count == r.size // 4
    # every call the loop made, warmup included: 3 + calls per size
    assert len(clock.calls) == sum(3 + r.calls for r in rows)
    assert [r.calls for r in rows] == [50, 50, 8]  # 512 MB of timed traffic, 2..50 calls


def test_busbw_follows_the_ring_formula():
    for n in (1, 2, 3, 4, 8):
        (r,), _ = run(n, [16 * MB], rate=2e8, iters=4)
        assert r.seconds == pytest.approx(16 * MB / 2e8)
        assert r.algbw == pytest.approx(2e8)
        assert r.busbw == pytest.approx(2e8 * 2 * (n - 1) / n)


def test_the_slowest_rank_sets_the_time():
    clock = FakeClock(1e8)
    (r,) = sweep.sweep([1 * MB], clock.allreduce, lambda s: 3 * s, 2, 0, 5, clock=clock)
    assert r.seconds == pytest.approx(3 * MB / 1e8)


def test_rows_round_trip_through_rank_0_lines():
    rows, _ = run(2, [4 * KB, 4 * MB])
    import json
    from dataclasses import asdict

    lines = ["[default0]:" + sweep.LINE + json.dumps(asdict(r)) for r in rows]
    assert sweep.parse_rows(["noise", *lines, sweep.DONE]) == rows


@pytest.mark.parametrize(
    "text, sizes",
    [("4K,64M", [4096, 64 * MB]), ("4096, 1mb", [4096, MB]), ("1G", [1 << 30])],
)
def test_parse_sizes(text, sizes):
    assert sweep.parse_sizes(text) == sizes


@pytest.mark.parametrize("text", ["3", "abc", "0", "-4K"])
def test_parse_sizes_rejects(text):
    with pytest.raises(ValueError, match=r"size"):
        sweep.parse_sizes(text)
