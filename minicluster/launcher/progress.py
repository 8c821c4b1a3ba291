"""The live progress bar: percent done, steps/s, ETA and how far the slowest rank lags.

Fed by the `step step=N target=T ...` lines the ranks print at every log step, which the
launcher reads anyway to write the merged log. That needs no Prometheus and no open
metrics ports (so it works with `--no-metrics` and before anything is deployed), and it is
exactly what the ranks report; the cost is a resolution of one log interval.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from minicluster.core.logformat import LogLine


class StepRateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} steps/s" if speed else "-- steps/s", style="cyan")


class RankSteps:
    """The latest step each rank reported (latest, not highest: a restart resumes from the
    last checkpoint and counts those steps again)."""

    def __init__(self, world_size: int, target_steps: int) -> None:
        self.world_size = world_size
        self.target_steps = target_steps
        self.steps: dict[int, int] = {}

    def observe(self, line: LogLine) -> bool:
        word = line.message.split(" ", 1)[0]
        fields = line.fields()
        if word == "start" and "world_size" in fields:
            self.world_size = int(fields["world_size"])
            return False
        if word != "step" or "step" not in fields:
            return False
        self.steps[line.rank] = int(fields["step"])
        if "target" in fields:
            self.target_steps = int(fields["target"])
        return True

    @property
    def completed(self) -> int:
        """Steps every rank has done (the slowest rank's count)."""
        if len(self.steps) < self.world_size:
            return 0
        return min(self.steps.values())

    @property
    def slowest(self) -> tuple[int, int] | None:
        """(rank, steps behind the fastest rank), or None before every rank reported."""
        if len(self.steps) < self.world_size or not self.steps:
            return None
        rank = min(self.steps, key=lambda r: (self.steps[r], r))
        return rank, max(self.steps.values()) - self.steps[rank]

    def describe_lag(self) -> str:
        slowest = self.slowest
        if slowest is None:
            return f"{len(self.steps)}/{self.world_size} ranks reporting"
        rank, behind = slowest
        if behind == 0:
            return f"{self.world_size} ranks in step"
        return f"slowest rank {rank}: {behind} steps behind"


class JobProgress:
    """A rich progress bar over RankSteps; use as a context manager around the job."""

    def __init__(self, job_id: str, target_steps: int, world_size: int, console: Console) -> None:
        self.ranks = RankSteps(world_size, target_steps)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            StepRateColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[lag]}"),
            console=console,
        )
        self.task = self.progress.add_task(
            # No total (an indeterminate bar) until a user's program reports its target.
            job_id,
            total=target_steps or None,
            lag=self.ranks.describe_lag(),
        )

    def __enter__(self) -> JobProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def observe(self, line: LogLine) -> None:
        if self.ranks.observe(line):
            self.progress.update(
                self.task,
                total=self.ranks.target_steps or None,
                completed=self.ranks.completed,
                lag=self.ranks.describe_lag(),
            )

    def print(self, text: str, style: str | None = None) -> None:
        """A line above the bar (warnings, errors, what is being stopped)."""
        self.progress.console.print(text, style=style, markup=False, highlight=False)
