"""core.metrics: each derived ratio's Python form and PromQL form give the same numbers
(the PromQL evaluated by promtool on synthetic series), and no other module writes its
own copy of a definition that lives there."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from minicluster.core.metrics import (
    COMM_PHASES,
    JOB_COMM_FRACTION_AGGREGATION,
    PHASES,
    busbw_factor,
    busbw_factor_promql,
    comm_fraction,
    comm_fraction_promql,
    compute_seconds_per_step_promql,
    job_comm_fraction,
    rate_over,
    rate_window,
)
from tests.support import REPO, require_tool

INTERVAL = 15  # seconds between synthetic samples
# Seconds each rank spends per interval in each phase; rank 2 is on MPS (staging) and
# rank 1 leaves out phases it never entered, as a rank that published no sample would.
RANKS = {
    0: {"data": 0.3, "forward": 1.2, "backward": 2.4, "comm": 3.0, "optimizer": 0.6},
    1: {"forward": 1.5, "backward": 3.0, "comm": 1.2, "optimizer": 0.3, "staging": 0.0},
    2: {"data": 0.15, "forward": 0.9, "backward": 1.8, "comm": 0.9, "staging": 1.5},
}
STEPS_PER_INTERVAL = 15


def _round(value: float) -> float:
    """PromQL's round(v, 1e-6), done the way Prometheus does it."""
    inverse = 1 / 1e-6
    return math.floor(value * inverse + 0.5) / inverse


def _labels(rank: int, **extra: str) -> str:
    pairs = {"job": "trainer", "job_id": "j", "rank": str(rank), **extra}
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"


def _promtool_case(tmp_path: Path) -> tuple[Path, Path]:
    rules = {
        "groups": [
            {
                "name": "forms",
                "rules": [
                    {"record": "t:comm_fraction", "expr": comm_fraction_promql(rate_over("1m"))},
                    {
                        "record": "t:comm_fraction_whole_job",
                        "expr": comm_fraction_promql(lambda series: series),
                    },
                    {
                        "record": "t:job_comm_fraction",
                        "expr": f"{JOB_COMM_FRACTION_AGGREGATION} (t:comm_fraction)",
                    },
                    {
                        "record": "t:compute_seconds_per_step",
                        "expr": compute_seconds_per_step_promql(rate_over("1m")),
                    },
                    {
                        "record": "t:busbw_factor",
                        "expr": busbw_factor_promql(
                            'count by (job_id) (trainer_steps_total{job="trainer"})'
                        ),
                    },
                ],
            }
        ]
    }
    series = [
        {"series": f"trainer_steps_total{_labels(r)}", "values": f"0+{STEPS_PER_INTERVAL}x40"}
        for r in RANKS
    ] + [
        {
            "series": f"trainer_phase_seconds_total{_labels(r, phase=p)}",
            "values": f"0+{seconds}x40",
        }
        for r, phases in RANKS.items()
        for p, seconds in phases.items()
    ]
    fractions = {r: comm_fraction(phases) for r, phases in RANKS.items()}
    rank_labels = {r: _labels(r) for r in RANKS}

    def per_rank(expr: str, value_of) -> dict:
        return {
            "expr": f"round({expr}, 0.000001)",
            "eval_time": "5m",
            "exp_samples": [
                {"labels": rank_labels[r], "value": _round(value_of(r))} for r in RANKS
            ],
        }

    job_fraction = job_comm_fraction(fractions)
    compute = {
        r: sum(s for p, s in phases.items() if p not in COMM_PHASES) / STEPS_PER_INTERVAL
        for r, phases in RANKS.items()
    }
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": f"{INTERVAL}s",
        "tests": [
            {
                "interval": f"{INTERVAL}s",
                "input_series": series,
                "promql_expr_test": [
                    per_rank("t:comm_fraction", fractions.get),
                    per_rank("t:comm_fraction_whole_job", fractions.get),
                    per_rank("t:compute_seconds_per_step", compute.get),
                    {
                        "expr": "round(t:job_comm_fraction, 0.000001)",
                        "eval_time": "5m",
                        "exp_samples": [{"labels": '{job_id="j"}', "value": _round(job_fraction)}],
                    },
                    {
                        "expr": "round(t:busbw_factor, 0.000001)",
                        "eval_time": "5m",
                        "exp_samples": [
                            {"labels": '{job_id="j"}', "value": _round(busbw_factor(len(RANKS)))}
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    (tmp_path / "test.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    return tmp_path / "rules.yml", tmp_path / "test.yml"


def test_python_and_promql_forms_agree(tmp_path):
    promtool = require_tool("promtool", "apt-get install prometheus (Homebrew: prometheus)")
    _, tests = _promtool_case(tmp_path)
    result = subprocess.run(
        [promtool, "test", "rules", tests.name], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_synthetic_case_tells_the_definitions_apart():
    # Staging counts as communication (rank 2), phases a rank never entered count as 0
    # (rank 1), and the job takes its least-communicating rank.
    fractions = {r: comm_fraction(phases) for r, phases in RANKS.items()}
    assert fractions[2] == pytest.approx(2.4 / 5.25)
    assert fractions[2] != pytest.approx(0.9 / 5.25)
    assert fractions[1] == pytest.approx(1.2 / 6.0)
    assert job_comm_fraction(fractions) == fractions[1]
    assert job_comm_fraction({0: None, 1: 0.3}) == 0.3
    assert comm_fraction(dict.fromkeys(PHASES, 0.0)) is None


@pytest.mark.parametrize(("ranks", "factor"), [(1, 0.0), (2, 1.0), (4, 1.5), (8, 1.75)])
def test_bus_bandwidth_factor(ranks, factor):
    assert busbw_factor(ranks) == factor


@pytest.mark.parametrize(
    ("scrape", "floor", "window"),
    [
        (1, 60, "1m"),
        (15, 60, "1m"),
        (30, 60, "2m"),
        (45, 60, "3m"),
        (100, 60, "400s"),
        (5, 2, "20s"),  # the report's floor: two query steps
    ],
)
def test_rate_window_holds_four_scrapes_and_a_floor(scrape, floor, window):
    assert rate_window(scrape, floor_seconds=floor) == window


# --- one definition: nobody else writes their own copy ----------------------------------

SOURCE_DIRS = ("minicluster", "trainer", "exporters", "deploy")
DEFINITIONS = REPO / "minicluster" / "core" / "metrics.py"
# What a copy looks like in Python or PromQL text.
COPIES = {
    "phase list": re.compile(r"""["']forward["']\s*,\s*["']backward["']"""),
    "communication phases": re.compile(r"""comm\|staging|["']comm["']\s*,\s*["']staging["']"""),
    "loopback selector": re.compile(r"""lo\|lo0|["']lo["']\s*,\s*["']lo0["']"""),
}
# Copies of derived rules that core.metrics builds from its constants.
DERIVED = {
    "rate window rule": re.compile(r"max\(\s*60\s*,\s*4\s*\*"),
    "bus bandwidth factor": re.compile(r"2\s*\*\s*\(\s*n\s*-\s*1\s*\)"),
}


def _sources() -> list[Path]:
    return [
        path
        for folder in SOURCE_DIRS
        for path in sorted((REPO / folder).rglob("*.py"))
        if path != DEFINITIONS
    ]


def test_the_patterns_find_the_definitions_themselves():
    text = DEFINITIONS.read_text()
    for what, pattern in COPIES.items():
        assert pattern.search(text), f"the {what} pattern no longer matches core.metrics"


def test_no_module_outside_core_defines_its_own_copy():
    copies = [
        f"{path.relative_to(REPO)}:{text[: m.start()].count(chr(10)) + 1}: {what}"
        for path in _sources()
        for text in [path.read_text()]
        for what, pattern in {**COPIES, **DERIVED}.items()
        for m in pattern.finditer(text)
    ]
    assert len(_sources()) > 50
    assert copies == [], "import these from minicluster.core.metrics instead"
