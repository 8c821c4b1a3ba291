"""The promtool unit tests hold under Prometheus 3's left-open windows as well as under
2.42's closed ones: every test file is replayed with left-open windows on the promtool
here (tests/promtool_windows.py says how), and the replay is shown to catch a test that
depends on the window's closed end, on the lookback's, or on one float rounding."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.promtool_windows import (
    SHRINK_MS,
    duration_ms,
    left_open,
    left_open_failures,
    lookback_left_open,
)
from tests.stack.helpers import PROMTOOL_TESTS_DIR
from tests.support import require_tool

TEST_FILES = sorted(PROMTOOL_TESTS_DIR.glob("*.yml"))


def _promtool() -> str:
    return require_tool("promtool", "apt-get install prometheus (Homebrew: prometheus)")


def test_every_rule_test_file_is_replayed():
    names = {p.name for p in TEST_FILES}
    assert {"node_test.yml", "stack_test.yml", "trainer_test.yml"} <= names


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_rule_tests_hold_with_left_open_windows(test_file, tmp_path):
    failures = left_open_failures(_promtool(), test_file, tmp_path)
    assert failures == [], "\n".join(failures)


# --- the rewrite ----------------------------------------------------------------------


def test_ranges_and_subqueries_shrink_by_a_millisecond():
    assert left_open("rate(x[1m])") == "rate(x[59999ms])"
    assert left_open("max_over_time(x[5m:1m])") == "max_over_time(x[299999ms:1m])"
    assert left_open("avg_over_time(rate(x[1m])[1h30m:])") == (
        "avg_over_time(rate(x[59999ms])[5399999ms:])"
    )
    assert left_open("predict_linear(x[6h], 86400)") == "predict_linear(x[21599999ms], 86400)"
    assert left_open("rate(x[ 1m ])", by_ms=7) == "rate(x[59993ms])"


def test_label_matchers_strings_and_comments_are_left_alone():
    expr = textwrap.dedent(
        """\
        # a window like [1m] in a comment
        rate(x{device!~"lo|lo0", name=~"en[0-9]", path="/[1m]", q='[5m:1m]', r=`[2h]`}[1m])
          / on (device) group_left y{kind="a\\"[1m]"}
        """
    )
    assert left_open(expr) == expr.replace("}[1m])", "}[59999ms])")


def test_durations():
    assert duration_ms("1m") == 60_000
    assert duration_ms("1h30m") == 5_400_000
    assert duration_ms("59999ms") == 59_999
    with pytest.raises(ValueError):
        duration_ms("1x")


def test_a_sample_without_successor_goes_stale_five_minutes_later():
    # 15 s grid: 20 steps are 5 minutes.
    assert lookback_left_open("1x4", 15_000) == "1x4 _x19 stale"
    assert lookback_left_open("1x4 _x30 2", 15_000) == "1x4 _x19 stale _x10 2 _x19 stale"
    # Followed by a sample or stale marker within 5 minutes: nothing to add there.
    assert lookback_left_open("0x8 stale", 15_000) == "0x8 stale"
    assert lookback_left_open("1 _x19 2 stale", 15_000) == "1 _x19 2 stale"
    assert lookback_left_open("1 _x3 2 stale", 60_000) == "1 _x3 2 stale"
    with pytest.raises(ValueError):
        lookback_left_open("1x4", 7_000)


# --- the replay catches what depends on the closed end --------------------------------

_DEPENDENT = """\
rule_files: []
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      - series: 'c'
        values: '{values}'
    promql_expr_test:
      - expr: {expr}
        eval_time: {eval_time}
        exp_samples:
          - labels: '{labels}'
            value: {value}
"""


def _dependent(tmp_path: Path, **fields) -> Path:
    test_file = tmp_path / "dependent_test.yml"
    test_file.write_text(_DEPENDENT.format(**fields))
    return test_file


@pytest.mark.parametrize(
    ("values", "expr", "eval_time", "labels", "value", "why"),
    [
        ("0+15x60", "count_over_time(c[1m])", "5m", "{}", 5, "2.x counts the sample at t-1m"),
        ("0+15x60", "rate(c[1m])", "5m", "{}", 1, "the rate is 1 only up to the last bit"),
        # The last sample, at 1m, is exactly 5 minutes old at 6m.
        ("0+15x4", "c", "6m", "c", 60, "2.x still sees a sample 5 minutes old"),
    ],
)
def test_the_replay_fails_a_test_that_depends_on_the_closed_end(
    tmp_path, values, expr, eval_time, labels, value, why
):
    fields = dict(values=values, expr=expr, eval_time=eval_time, labels=labels, value=value)
    test_file = _dependent(tmp_path, **fields)
    plain = subprocess.run(
        [_promtool(), "test", "rules", test_file.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert plain.returncode == 0, f"{why}: 2.42 passes it\n{plain.stdout}"
    assert left_open_failures(_promtool(), test_file, tmp_path / "replay"), why


def test_a_rounded_rate_holds_in_every_replay(tmp_path):
    fields = dict(values="0+15x60", expr="round(rate(c[1m]), 0.0001)", eval_time="5m")
    test_file = _dependent(tmp_path, labels="{}", value=1, **fields)
    assert left_open_failures(_promtool(), test_file, tmp_path / "replay") == []
    assert len(SHRINK_MS) >= 3
