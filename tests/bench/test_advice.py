"""The bench report's advice follows the measured figures."""

from __future__ import annotations

import pytest

from minicluster.bench import advice
from minicluster.bench.sweep import MB, row


def rows(busbw_by_size: dict[int, float]) -> list[dict]:
    out = []
    for size, busbw in busbw_by_size.items():
        r = row(size, 10, 10 * size / busbw, 2)  # 2 ranks: busbw == algbw
        out.append(r.__dict__)
    return out


def test_slow_link_gets_compression_and_large_share():
    measured = rows({1 * MB: 60e6, 16 * MB: 100e6, 64 * MB: 110e6, 256 * MB: 112e6})
    tips = advice.advise(measured, 117e6, 2)
    assert "grad_compression: fp16" in tips[0]
    assert advice.large_share(measured, 117e6) == pytest.approx(112e6 / 117e6)
    assert advice.knee(measured) == 16 * MB
    assert any("96% of raw TCP" in t for t in tips)


def test_fast_link_keeps_none_and_a_late_knee_raises_the_bucket():
    measured = rows({16 * MB: 300e6, 64 * MB: 700e6, 256 * MB: 1000e6})
    tips = advice.advise(measured, 5e9, 2)
    assert "grad_compression: none" in tips[0]
    assert any("bucket_cap_mb: 256" in t for t in tips)
    assert any("only 20% of raw TCP" in t and "interface" in t for t in tips)


def training_results(comm_fraction: float, link: float, calls: int, steps: int = 10) -> dict:
    return {
        "runs": [
            {"comm_fraction": 0.0},
            {"comm_fraction": comm_fraction, "allreduce_calls": calls, "steps": steps},
        ],
        "tcp": {"bytes_per_second": link},
        "model": {"grad_bytes": 6 * MB},
    }


def test_a_comm_bound_step_on_1_gbe_gets_compression_a_faster_link_and_bigger_buckets():
    tips = advice.advise_training(training_results(0.55, 118e6, calls=30))
    assert "grad_compression: fp16" in tips[0] and "55%" in tips[0]
    assert any("0.94 Gbit/s" in t and "53 ms" in t for t in tips)
    assert any("3 all-reduce calls per step" in t and "bucket_cap_mb" in t for t in tips)


def test_a_compute_bound_step_keeps_none():
    tips = advice.advise_training(training_results(0.06, 5e9, calls=10))
    assert "grad_compression: none" in tips[0]
    assert not any("bucket_cap_mb" in t or "Gbit/s" in t for t in tips)
