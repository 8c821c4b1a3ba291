"""runs/bench-<time>/report.md: the bench's numbers as tables, with its plots beside it."""

from __future__ import annotations

from pathlib import Path

from minicluster.bench.advice import advise_training
from minicluster.launcher.summary import PHASES
from minicluster.report.figures import human_bytes


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _rate(value: float | None) -> str:
    return "n/a" if not value else human_bytes(value, per_second=True)


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def render_markdown(results: dict, plots: dict[str, Path]) -> str:
    settings, machine, model = results["settings"], results["machine"], results["model"]
    runs = results["runs"]
    lines = [
        f"# minicluster bench, {results['started_at']}",
        "",
        f"World size {runs[0]['world_size']} against {runs[-1]['world_size']} on "
        f"`{machine['host']}` ({machine['cpus']} CPUs, {machine['platform']}, torch "
        f"{machine['torch']}): model `{model['name']}` with {model['parameters']} parameters "
        f"({human_bytes(model['grad_bytes'] or 0)} of gradients per step), "
        f"{settings['steps']} steps of batch {settings['batch_size']} per rank, "
        f"backend {model['backend']} on {model['device']}, one intra-op thread per rank.",
        "",
        f"Each world size ran {_times(results.get('repeats', 1))}, interleaved; the tables "
        "show the run with the median samples/s (all runs: "
        + "; ".join(
            f"{run['world_size']} rank(s) "
            + ", ".join(f"{v:.1f}" for v in run.get("samples_per_second_all_runs") or [])
            for run in runs
        )
        + " samples/s).",
        "",
        "## Throughput",
        "",
        "| ranks | samples/s | step time | comm fraction | final loss |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        step_ms = (run["step_seconds"] or 0) * 1000
        lines.append(
            f"| {run['world_size']} | {_num(run['samples_per_second'], '.1f')} | "
            f"{step_ms:.2f} ms | {_num(run['comm_fraction'], '.1%')} | "
            f"{_num(run['final_loss'], '.4f')} |"
        )
    lines += [
        "",
        f"Speedup {_num(results['speedup'], '.2f')}x, scaling efficiency "
        f"{_num(results['scaling_efficiency'], '.1%')} (batch per rank fixed, so perfect "
        f"scaling is {runs[-1]['world_size'] // runs[0]['world_size']}x the samples/s).",
        "",
        f"![throughput]({plots['throughput'].name})",
        "",
        "## Step time by phase (ms per step, mean over ranks)",
        "",
        "| ranks | " + " | ".join(PHASES) + " |",
        "| ---: | " + " | ".join("---:" for _ in PHASES) + " |",
    ]
    for run in runs:
        phases = run["phase_seconds_per_step"] or {}
        cells = " | ".join(f"{1000 * phases.get(p, 0.0):.2f}" for p in PHASES)
        lines.append(f"| {run['world_size']} | {cells} |")
    scaled = runs[-1]
    lines += [
        "",
        f"![step phases]({plots['step_phases'].name})",
        "",
        "## All-reduce against the link",
        "",
        f"- algorithm: {results['allreduce_algorithm']}",
        f"- {scaled['allreduce_calls']} calls, {human_bytes(scaled['allreduce_bytes'] or 0)} "
        f"all-reduced per rank in {_num(scaled['allreduce_seconds'], '.3f')} s",
        f"- algorithm bandwidth {_rate(scaled['allreduce_algbw_bytes_per_second'])}, "
        f"bus bandwidth {_rate(scaled['allreduce_busbw_bytes_per_second'])}",
        f"- raw TCP on {results['tcp']['address']} in the same run: "
        f"{_rate(results['tcp']['bytes_per_second'])} "
        f"({human_bytes(results['tcp']['bytes'])} in {results['tcp']['seconds']:.2f} s, "
        "one stream)",
        f"- bus bandwidth / raw TCP: {_num(results['busbw_tcp_ratio'], '.1%')}",
        "",
        f"![bandwidth]({plots['bandwidth'].name})",
        "",
        "All-reduce seconds include the wait for the slower rank, so a low ratio with a "
        "high comm fraction points at a straggler or at per-call latency (small buckets), "
        "not only at the link.",
        "",
        "## What to change",
        "",
        *[f"- {tip}" for tip in advise_training(results)],
        "",
    ]
    return "\n".join(lines)
