"""The shared readiness wait: its deadline scales with MINICLUSTER_TEST_TIME_FACTOR."""

from __future__ import annotations

import time

import pytest

from tests.support import DEFAULT_TIME_FACTOR, TIME_FACTOR_ENV, deadline, wait_until


def test_deadlines_double_by_default(monkeypatch):
    monkeypatch.delenv(TIME_FACTOR_ENV, raising=False)
    assert DEFAULT_TIME_FACTOR == 2.0
    assert deadline(90) == 180


def test_the_factor_stretches_or_shrinks_every_wait(monkeypatch):
    monkeypatch.setenv(TIME_FACTOR_ENV, "0.005")
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match=r"timed out after 0s waiting for never"):
        wait_until(lambda: False, "never", timeout=100, interval=0.05)
    assert time.monotonic() - started < 5  # 0.5 s, not 100 s

    monkeypatch.setenv(TIME_FACTOR_ENV, "4")
    assert deadline(90) == 360
    calls = iter([None, 0, "ready"])
    assert wait_until(lambda: next(calls), "ready", timeout=1, interval=0.01) == "ready"


@pytest.mark.parametrize("raw", ["zero", "0", "-1"])
def test_a_bad_factor_is_one_line(monkeypatch, raw):
    monkeypatch.setenv(TIME_FACTOR_ENV, raw)
    with pytest.raises(pytest.fail.Exception) as failed:
        deadline(1)
    assert str(failed.value) == f"{TIME_FACTOR_ENV}={raw!r}: must be a positive number, e.g. 3"
