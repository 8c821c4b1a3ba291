"""Replay Prometheus 3's left-open windows on a closed-window promtool (2.42).

Prometheus 2.x selects the samples of a range `[w]` evaluated at `t` from the closed
interval [t-w, t]; 3.0 made it left-open, (t-w, t], and did the same to the 5 minute
lookback of instant selectors (CHANGELOG 3.0.0, prometheus/prometheus#13904). A promtool
unit test whose expectation depends on the sample at t-w passes on one and fails on the
other, so this module rewrites a copy of the rules and tests so that promtool 2.42 sees
exactly what 3.x would see, and runs `promtool test rules` on the copy:

- Range selectors and subqueries are a few milliseconds shorter: `[1m]` -> `[59999ms]`,
  `[5m:1m]` -> `[299999ms:1m]`. Test samples and evaluations sit on whole-second grids,
  so the closed window [t-w+d, t] holds the same samples as (t-w, t] for any d under a
  second, and a subquery's first step (the first multiple of its step at or after
  t-w+d) is the one 3.x takes. rate() divides by the window it extrapolated to, so its
  value is the 3.x value up to the last bit of float rounding; increase() and delta()
  come out smaller by d/w, which only a rounded expectation absorbs (no rule uses them).
- That last bit is where 3.x and 2.42 disagree (a rate of 1 over 4 samples comes out
  0.9999999999999999), and no replay reproduces 3.x's rounding exactly. So each file is
  replayed with several shrinks d (SHRINK_MS), each rounding differently: an expectation
  that holds for all of them holds because of its value, not because of one rounding.
- The lookback: a sample that is not followed by another within 5 minutes is visible in
  2.x until exactly 5 minutes later, in 3.x until just before. A stale marker placed in
  the input series at that instant makes 2.x hide it there too.

The rewrite is PromQL-aware in the one way that matters: it scans an expression, skips
string literals ("...", '...', `...`) and `#` comments, and rewrites only a `[` that
opens a range or subquery (a PromQL duration, optionally `:` and a step, then `]`).
Label matchers keep their regular expressions, e.g. `device=~"en[0-9]"` or `"[1m]"`.
"""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

LOOKBACK_MS = 5 * 60 * 1000

_UNIT_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 7 * 86_400_000,
    "y": 365 * 86_400_000,
}
_DURATION = r"(?:\d+(?:ms|[smhdwy]))+"
_RANGE = re.compile(rf"\[\s*({_DURATION})\s*(?:(:)\s*({_DURATION})?\s*)?\]")


def duration_ms(text: str) -> int:
    """Milliseconds of a PromQL duration such as `1m`, `1h30m` or `59999ms`."""
    parts = re.findall(r"(\d+)(ms|[smhdwy])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a PromQL duration")
    return sum(int(n) * _UNIT_MS[u] for n, u in parts)


def _shorten(match: re.Match, by_ms: int) -> str:
    window = f"{duration_ms(match[1]) - by_ms}ms"
    if match[2] is None:
        return f"[{window}]"
    return f"[{window}:{match[3] or ''}]"


def _code_spans(expr: str) -> list[tuple[str, bool]]:
    """`expr` cut into (text, is_code) pieces: strings and comments are not code."""
    pieces: list[tuple[str, bool]] = []
    start = i = 0
    while i < len(expr):
        char = expr[i]
        if char in "\"'`" or char == "#":
            pieces.append((expr[start:i], True))
            if char == "#":
                end = expr.find("\n", i)
                end = len(expr) if end < 0 else end
            else:
                end = i + 1
                while end < len(expr) and expr[end] != char:
                    end += 2 if expr[end] == "\\" and char != "`" else 1
                end = min(end + 1, len(expr))
            pieces.append((expr[i:end], False))
            start = i = end
            continue
        i += 1
    pieces.append((expr[start:], True))
    return pieces


def left_open(expr: str, by_ms: int = 1) -> str:
    """`expr` with every range selector and subquery window `by_ms` milliseconds shorter."""
    if not 0 < by_ms < 1000:
        raise ValueError("the window must shrink by less than the 1 s sample grid")
    pieces = _code_spans(expr)
    return "".join(
        _RANGE.sub(lambda m: _shorten(m, by_ms), text) if code else text for text, code in pieces
    )


# --- input series: promtool's expanding notation -------------------------------------


@dataclass
class _Run:
    kind: str  # "sample", "blank" or "stale"
    count: int
    text: str


def _runs(values: str) -> list[_Run]:
    runs = []
    for token in values.split():
        if token == "stale":
            runs.append(_Run("stale", 1, token))
        elif token == "_":
            runs.append(_Run("blank", 1, token))
        elif match := re.fullmatch(r"_x(\d+)", token):
            runs.append(_Run("blank", int(match[1]), token))
        elif match := re.fullmatch(r".+x(\d+)", token):
            # `axn` and `a+bxn`: n+1 samples.
            runs.append(_Run("sample", int(match[1]) + 1, token))
        else:
            runs.append(_Run("sample", 1, token))
    return runs


def _kinds(runs: list[_Run]) -> list[str]:
    return [run.kind for run in runs for _ in range(run.count)]


def _render(kinds: list[str], runs: list[_Run]) -> str:
    """Sample runs keep their text; blanks and stale markers are written out anew."""
    out: list[str] = []

    def gap(start: int, end: int) -> None:
        position = start
        while position < end:
            if kinds[position] == "stale":
                out.append("stale")
                position += 1
                continue
            blank = position
            while position < end and kinds[position] == "blank":
                position += 1
            out.append("_" if position - blank == 1 else f"_x{position - blank}")

    position = 0
    for run in runs:
        if run.kind == "sample":
            out.append(run.text)
        else:
            gap(position, position + run.count)
        position += run.count
    gap(position, len(kinds))
    return " ".join(out)


def lookback_left_open(values: str, interval_ms: int) -> str:
    """`values` with a stale marker 5 minutes after every sample that has no successor
    within 5 minutes, where 2.x would still see it and 3.x no longer does."""
    if LOOKBACK_MS % interval_ms:
        raise ValueError(f"interval {interval_ms} ms does not divide the 5 minute lookback")
    steps = LOOKBACK_MS // interval_ms
    runs = _runs(values)
    kinds = _kinds(runs)
    original = list(kinds)
    for position, kind in enumerate(original):
        if kind != "sample":
            continue
        following = original[position + 1 : position + steps + 1]
        if any(k != "blank" for k in following):
            continue
        target = position + steps
        if target >= len(kinds):
            kinds.extend(["blank"] * (target + 1 - len(kinds)))
        kinds[target] = "stale"
    return _render(kinds, runs)


# --- the replay ----------------------------------------------------------------------

# Shrinking a window by any amount below the 1 s grid selects the same samples, but each
# amount rounds the extrapolation's last bit differently (as 3.x, which keeps the exact
# window, rounds it differently again). An expectation that holds for all of them holds
# because of its value, not because of one float rounding.
SHRINK_MS = (1, 2, 3, 7, 11, 13)


def _rewrite_rules(document: dict, by_ms: int) -> dict:
    for group in document.get("groups", []):
        for rule in group.get("rules", []):
            rule["expr"] = left_open(str(rule["expr"]), by_ms)
    return document


def _rewrite_tests(document: dict, by_ms: int) -> dict:
    default = document.get("evaluation_interval", "1m")
    for test in document.get("tests", []):
        interval = duration_ms(str(test.get("interval", default)))
        if interval % 1000:
            raise ValueError(f"{test.get('name')}: interval {interval} ms is off the 1 s grid")
        for series in test.get("input_series", []):
            series["values"] = lookback_left_open(str(series["values"]), interval)
        for case in test.get("promql_expr_test", []):
            case["expr"] = left_open(str(case["expr"]), by_ms)
    return document


def write_left_open_copy(test_file: Path, into: Path, by_ms: int = 1) -> Path:
    """Rewrite `test_file` and the rule files it names into `into`, keeping their
    relative layout; return the copy of the test file."""
    test_file = test_file.resolve()
    document = yaml.safe_load(test_file.read_text())
    rule_paths = [(test_file.parent / name).resolve() for name in document.get("rule_files", [])]
    root = Path(*_common_parts([test_file, *rule_paths]))
    for rule_path in rule_paths:
        copy = into / rule_path.relative_to(root)
        copy.parent.mkdir(parents=True, exist_ok=True)
        rewritten = _rewrite_rules(yaml.safe_load(rule_path.read_text()), by_ms)
        copy.write_text(yaml.safe_dump(rewritten, sort_keys=False, width=1000))
    test_copy = into / test_file.relative_to(root)
    test_copy.parent.mkdir(parents=True, exist_ok=True)
    rewritten = _rewrite_tests(document, by_ms)
    test_copy.write_text(yaml.safe_dump(rewritten, sort_keys=False, width=1000))
    return test_copy


def _common_parts(paths: list[Path]) -> tuple[str, ...]:
    parts = paths[0].parent.parts
    for path in paths[1:]:
        other = path.parent.parts
        length = 0
        while length < min(len(parts), len(other)) and parts[length] == other[length]:
            length += 1
        parts = parts[:length]
    return parts


def left_open_failures(promtool: str, test_file: Path, workdir: Path) -> list[str]:
    """`promtool test rules` on left-open copies of `test_file`, one per shrink amount;
    the output of each run that failed."""

    def run(by_ms: int) -> str | None:
        copy = write_left_open_copy(test_file, workdir / f"shrink-{by_ms}ms", by_ms)
        result = subprocess.run(
            [promtool, "test", "rules", copy.name],
            cwd=copy.parent,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode == 0:
            return None
        return f"windows {by_ms} ms short:\n{result.stdout}{result.stderr}"

    with ThreadPoolExecutor(max_workers=2) as pool:
        return [out for out in pool.map(run, SHRINK_MS) if out is not None]
