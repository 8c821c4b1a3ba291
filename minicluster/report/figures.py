"""Matplotlib figures as PNG bytes, shared by `minicluster report` and `minicluster bench`.

Figures are built with matplotlib's object-oriented API (`Figure`, no pyplot), which
renders with the Agg canvas and never touches a display or a GUI backend: the commands
run the same over ssh, in CI and on a Mac without a window server session.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

from matplotlib.figure import Figure

# One colour per step phase, the same in every plot (bench, report, README picture).
PHASE_COLORS = {
    "data": "#9e9e9e",
    "forward": "#1f77b4",
    "backward": "#ff7f0e",
    "comm": "#d62728",
    "optimizer": "#2ca02c",
    "staging": "#9467bd",
}
SERIES_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
DPI = 100


def new_figure(width: float = 8.0, height: float = 3.2) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return figure


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def save_png(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(figure))
    return path


def data_uri(png: bytes) -> str:
    """A PNG as a data: URI, so an HTML page needs no other file and no network."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def human_bytes(value: float, per_second: bool = False) -> str:
    suffix = "/s" if per_second else ""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.2f} {unit}{suffix}"
    return f"{value:.0f} B{suffix}"
