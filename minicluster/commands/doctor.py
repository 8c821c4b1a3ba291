"""`minicluster doctor [--config FILE]`: check every node, one table, a fix beside each failure."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from minicluster.commands.args import add_config_arguments, config_from_args
from minicluster.core.config import require_real_addresses

if TYPE_CHECKING:
    from minicluster.deploy.doctor import Check

MARKS = {True: "[green]ok[/]", False: "[red]FAIL[/]", None: "[yellow]not checked[/]"}
WARN = "[yellow]warn[/]"


def mark(check: Check) -> str:
    return WARN if check.warning else MARKS[check.ok]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check ssh, python, launchd imports, exporters, clocks, gloo address, ports, disk",
        description="Check every node in the config and print one table; exit 1 if anything fails.",
    )
    add_config_arguments(parser, allow_local=False)
    parser.set_defaults(func=run)


# Below this width the five columns fold into unreadable slivers; a check's detail and fix
# then go on lines of their own under its name.
WIDE_TABLE_COLUMNS = 160


def table(checks: list[Check], width: int | None = None) -> Table:
    if width is not None and width < WIDE_TABLE_COLUMNS:
        return _narrow_table(checks)
    result = Table(title="minicluster doctor", show_lines=False)
    for column in ("node", "check", "result", "detail", "fix"):
        result.add_column(column, overflow="fold")
    last_node = None
    for check in checks:
        if last_node is not None and check.node != last_node:
            result.add_section()
        last_node = check.node
        result.add_row(check.node, check.name, mark(check), check.detail, check.fix)
    return result


def _narrow_table(checks: list[Check]) -> Table:
    result = Table(title="minicluster doctor", box=box.SIMPLE_HEAD, pad_edge=False)
    name_width = min(16, max([4, *(len(check.node) for check in checks)]))
    result.add_column("node", no_wrap=True, width=name_width, overflow="ellipsis")
    result.add_column("result", no_wrap=True, width=len("not checked"))
    result.add_column("check, detail and fix", overflow="fold")
    last_node = None
    for check in checks:
        if last_node is not None and check.node != last_node:
            result.add_section()
        text = Text(check.name, style="bold")
        if check.detail:
            text.append(f"\n{check.detail}")
        if check.fix and (check.ok is not True or check.warning):
            text.append(f"\nfix: {check.fix}", style="yellow")
        result.add_row(check.node if check.node != last_node else "", mark(check), text)
        last_node = check.node
    return result


def run(args: argparse.Namespace) -> int:
    from minicluster.deploy.doctor import diagnose, failed  # pyinfra: only when doctor runs

    config = config_from_args(args)
    require_real_addresses(config, args.config or "config.yaml")
    checks = diagnose(config)
    console = Console(highlight=False)
    console.print(table(checks, console.width))
    problems = failed(checks)
    if problems:
        names = "; ".join(f"{check.node}: {check.name}" for check in problems)
        console.print(f"[red]{len(problems)} check(s) failed:[/] {names}", soft_wrap=True)
        return 1
    warned = [check for check in checks if check.warning]
    if warned:
        names = "; ".join(f"{check.node}: {check.name}" for check in warned)
        console.print(f"[yellow]{len(warned)} warning(s):[/] {names}", soft_wrap=True)
    console.print(f"all {len(checks)} checks passed on {len(config.nodes)} nodes")
    return 0
