"""doctor's table stays readable in an 80-column terminal: every check name, detail and fix
is there in whole words, and no line is wider than the terminal."""

from __future__ import annotations

import io
import re

from rich.console import Console

from minicluster.commands.doctor import table
from minicluster.deploy.doctor import Check

CHECKS = [
    Check("mini-red", "ssh reachable", True, "admin@10.0.0.2:22"),
    Check(
        "mini-red",
        "package imports in the launchd environment",
        False,
        "ModuleNotFoundError: No module named 'minicluster' under /opt/minicluster/venv/bin/python",
        "make deploy installs the project wheel into the venv; never rely on PYTHONPATH",
    ),
    Check("mini-red", "clocks within 50 ms of the master", None, "not checked: ssh failed"),
    Check("mini-yellow", "rendezvous and metrics ports free and reachable", True, "29400 free"),
]


def _render(width: int) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None)
    console.print(table(CHECKS, console.width))
    return out.getvalue().splitlines()


def _words(text: str) -> list[str]:
    return re.findall(r"\S+", text)


def test_at_80_columns_every_word_is_whole_and_in_order():
    lines = _render(80)
    assert all(len(line) <= 80 for line in lines)
    offset = next(line.index("check, detail") for line in lines if "check, detail" in line)
    text_column = [line[offset:] for line in lines]
    flowing = _words(" ".join(text_column))
    for check in CHECKS:
        expected = _words(check.name) + _words(check.detail)
        if check.ok is not True:
            expected += ["fix:", *_words(check.fix)] if check.fix else []
        start = flowing.index(expected[0])
        assert flowing[start : start + len(expected)] == expected, check.name
    # Each check's name starts a row, beside its node (first row of the node) and result.
    rows = [line.split() for line in lines]
    assert ["mini-red", "ok", "ssh", "reachable"] in rows
    assert ["FAIL", "package", "imports", "in", "the", "launchd", "environment"] in rows
    assert ["not", "checked", "clocks", "within", "50", "ms", "of", "the", "master"] in rows


def test_a_wide_terminal_keeps_one_row_per_check_with_five_columns():
    lines = _render(250)
    cells = [[c.strip() for c in line.split("│")] for line in lines if "│" in line]
    assert ["", "mini-red", "ssh reachable", "ok", "admin@10.0.0.2:22", "", ""] in cells
