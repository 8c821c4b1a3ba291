"""The bench's PNG plots, drawn from the `compare()` results."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from minicluster.launcher.summary import PHASES
from minicluster.report.figures import PHASE_COLORS, human_bytes, new_figure, save_png


def throughput_figure(results: dict) -> Figure:
    runs = results["runs"]
    labels = [f"{r['world_size']} rank{'s' if r['world_size'] > 1 else ''}" for r in runs]
    measured = [r["samples_per_second"] or 0.0 for r in runs]
    base = runs[0]
    ideal = [measured[0] * r["world_size"] / base["world_size"] for r in runs]
    figure = new_figure(6.0, 3.4)
    ax = figure.add_subplot()
    x = range(len(runs))
    ax.bar([i - 0.2 for i in x], ideal, width=0.4, color="#d0d0d0", label="perfect scaling")
    bars = ax.bar([i + 0.2 for i in x], measured, width=0.4, color="#1f77b4", label="measured")
    ax.bar_label(bars, fmt="%.0f")
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("samples/s (all ranks)")
    efficiency = results.get("scaling_efficiency")
    title = "Training throughput"
    if efficiency is not None:
        title += f": scaling efficiency {efficiency:.0%}"
    ax.set_title(title)
    ax.legend(loc="upper left", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return figure


def phases_figure(results: dict) -> Figure:
    runs = results["runs"]
    figure = new_figure(7.0, 2.6)
    ax = figure.add_subplot()
    labels = [f"{r['world_size']} rank{'s' if r['world_size'] > 1 else ''}" for r in runs]
    left = [0.0] * len(runs)
    for phase in PHASES:
        widths = [1000 * (r["phase_seconds_per_step"] or {}).get(phase, 0.0) for r in runs]
        if not any(widths):
            continue
        ax.barh(labels, widths, left=left, color=PHASE_COLORS[phase], label=phase)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    for i, run in enumerate(runs):
        fraction = run.get("comm_fraction")
        note = f"  {left[i]:.1f} ms" + (f", comm {fraction:.0%}" if fraction is not None else "")
        ax.text(left[i], i, note, va="center", fontsize=9)
    ax.set_xlim(0, max(left or [1]) * 1.35 or 1)
    ax.set_xlabel("ms per step (mean over ranks)")
    ax.set_title("Where the step time goes")
    ax.legend(ncols=6, loc="lower center", bbox_to_anchor=(0.5, 1.12), frameon=False, fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return figure


def bandwidth_figure(results: dict) -> Figure:
    scaled = results["runs"][-1]
    bars = [
        (f"raw TCP ({results['tcp']['address']})", results["tcp"]["bytes_per_second"], "#7f7f7f"),
        ("all-reduce bus bw", scaled["allreduce_busbw_bytes_per_second"] or 0.0, "#d62728"),
        ("all-reduce alg bw", scaled["allreduce_algbw_bytes_per_second"] or 0.0, "#ff9896"),
    ]
    figure = new_figure(6.5, 2.6)
    ax = figure.add_subplot()
    names = [b[0] for b in bars]
    values = [b[1] / 1e6 for b in bars]
    drawn = ax.barh(names, values, color=[b[2] for b in bars])
    ax.bar_label(drawn, labels=[human_bytes(b[1], per_second=True) for b in bars], padding=3)
    ax.invert_yaxis()
    # Log scale: on a fast link the all-reduce can be orders of magnitude below raw TCP.
    positive = [v for v in values if v > 0] or [1.0]
    ax.set_xscale("log")
    ax.set_xlim(min(positive) / 2, max(positive) * 8)
    ax.set_xlabel("MB/s (log scale)")
    ratio = results.get("busbw_tcp_ratio")
    title = f"All-reduce ({scaled['world_size']} ranks) against raw TCP on the same link"
    if ratio is not None:
        title += f"\nbus bandwidth = {ratio:.1%} of raw TCP"
    ax.set_title(title, fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    return figure


def write_plots(results: dict, out_dir: Path) -> dict[str, Path]:
    """name -> PNG path; names are what report.md links."""
    figures = {
        "throughput": throughput_figure(results),
        "step_phases": phases_figure(results),
        "bandwidth": bandwidth_figure(results),
    }
    return {name: save_png(fig, out_dir / f"{name}.png") for name, fig in figures.items()}
