"""The bench's arithmetic, on synthetic trainer summaries: scaling efficiency, bus
bandwidth against TCP, the phase table in report.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from minicluster.bench.jobs import BenchRun, BenchSettings
from minicluster.bench.markdown import render_markdown
from minicluster.bench.plots import write_plots
from minicluster.bench.results import compare
from minicluster.bench.tcp import TcpResult, measure
from minicluster.launcher.summary import summarize

GRAD = 1_000_000


def run(world_size: int, comm: float) -> BenchRun:
    ranks = {
        r: {
            "rank": r,
            "world_size": world_size,
            "steps": 100,
            "samples": 3200,
            "wall_seconds": 2.0,
            "phase_seconds": {
                "data": 0.1,
                "forward": 0.5,
                "backward": 0.9,
                "comm": comm,
                "optimizer": 0.5 - comm,
                "staging": 0.0,
            },
            "allreduce_calls": 100,
            "allreduce_bytes": 100 * GRAD,
            "allreduce_seconds": comm,
            "grad_bytes": GRAD,
            "restarts": 0,
            "final_loss": 0.5,
        }
        for r in range(world_size)
    }
    summary = summarize(
        ranks, world_size=world_size, target_steps=100, wall_seconds=5, link_speed_bytes=None
    )
    start = {"backend": "gloo", "device": "cpu", "model": "mlp", "params": "250000"}
    return BenchRun(world_size, f"b-ws{world_size}", summary, start, ranks)


def test_compare_and_report(tmp_path: Path) -> None:
    results = compare(
        run(1, 0.05), run(2, 0.4), TcpResult("127.0.0.1", 4 * 10**9, 2.0), BenchSettings(), "t0"
    )
    one, two = results["runs"]
    assert one["samples_per_second"] == pytest.approx(1600.0)
    assert two["samples_per_second"] == pytest.approx(3200.0)
    assert results["speedup"] == pytest.approx(2.0)
    assert results["scaling_efficiency"] == pytest.approx(1.0)
    # busbw of 2 ranks = algbw = 100 MB / 0.4 s; raw TCP 2 GB/s.
    assert two["allreduce_busbw_bytes_per_second"] == pytest.approx(250e6)
    assert results["busbw_tcp_ratio"] == pytest.approx(0.125)
    assert two["comm_fraction"] == pytest.approx(0.4 / 2.0)
    assert results["allreduce_algorithm"].startswith("ring (gloo")
    assert results["model"]["parameters"] == 250000

    plots = write_plots(results, tmp_path)
    assert sorted(p.name for p in plots.values()) == [
        "bandwidth.png",
        "step_phases.png",
        "throughput.png",
    ]
    text = render_markdown(results, plots)
    assert "| 2 | 3200.0 | 20.00 ms | 20.0% | 0.5000 |" in text
    assert "| 2 | 1.00 | 5.00 | 9.00 | 4.00 | 1.00 | 0.00 |" in text
    assert "scaling efficiency 100.0%" in text
    assert "bus bandwidth / raw TCP: 12.5%" in text
    for plot in plots.values():
        assert f"]({plot.name})" in text


def test_tcp_measure_counts_what_arrived() -> None:
    result = measure("127.0.0.1", seconds=0.2)
    assert result.bytes >= 1 << 20  # at least one 1 MiB buffer in 0.2 s on loopback
    assert 0 < result.seconds < 5
    assert result.bytes_per_second == result.bytes / result.seconds
