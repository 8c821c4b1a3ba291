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
