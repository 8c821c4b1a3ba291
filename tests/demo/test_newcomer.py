"""The newcomer's path, as they would walk it: a fresh clone, `make demo ONCE=1`, the
report in a browser, `make bench`. Slow: `make` creates the clone's own venv first."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import psutil
import pytest

from minicluster.demo import services
from tests.demo.browser import Browser
from tests.demo.conftest import demo_config_file, make_env
from tests.support import require_tool

pytestmark = pytest.mark.integration

# Long enough (about 15 s of paced steps) for several 3 s scrapes while it trains, even when
# a busy machine delays the first scrape: a rate needs two samples that differ.
STEPS = 150
PANELS = 6


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def leftovers(*paths: Path) -> list[str]:
    """Processes whose command line names one of `paths` (the clone, the state dir)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if any(str(path) in cmdline for path in paths):
            found.append(f"{process.info['pid']}: {cmdline[:200]}")
    return found


def run_make(clone: Path, env: dict, *args: str, timeout: float) -> subprocess.CompletedProcess:
    make = require_tool("make", "apt-get install -y make")
    return subprocess.run(
        [make, "-C", str(clone), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_make_demo_once_from_a_fresh_clone(
    fresh_clone: Path, tmp_path: Path, browser: Browser
) -> None:
    state = tmp_path / "state-home"
    config = demo_config_file(tmp_path)
    result = run_make(
        fresh_clone,
        make_env(state),
        "demo",
        "ONCE=1",
        f"DEMO_FLAGS=--config {config} --steps {STEPS}",
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]

    # The job's record: every step asked for, on both ranks, seen early by Prometheus.
    records = sorted((fresh_clone / "runs").glob("*.json"))
    assert len(records) == 1, output[-2000:]
    record = json.loads(records[0].read_text())
    summary = record["summary"]
    assert (summary["steps"], summary["target_steps"], summary["ranks_reported"]) == (
        STEPS,
        STEPS,
        2,
    )
    assert [r["steps"] for r in record["ranks"]] == [STEPS, STEPS]
    assert f"{STEPS}/{STEPS}" in output  # the printed summary's steps row
    # Prometheus has the job within 15 s of its ranks starting (launch-to-start is Python
    # importing torch: seconds on an idle machine, more on a busy one).
    demo = record["demo"]
    after_start = demo["first_sample_after_rank_start_seconds"]
    assert after_start is not None and after_start <= 15, demo
    assert demo["first_sample_seconds"] >= after_start

    # Nothing it started is still running: each recorded PID, and anything else that
    # names the clone or the state folder (torchrun, ranks).
    stack = services.load(state / "minicluster")
    assert stack is not None and not stack.running
    names = sorted(s.name for s in stack.services)
    assert names == ["alertmanager", "exporter-mini-red", "exporter-mini-yellow", "prometheus"]
    assert [s.name for s in stack.services if services.is_alive(s)] == []
    assert leftovers(fresh_clone, state, tmp_path / "state") == []

    # The report, opened the way a person would: no console errors, every plot drawn.
    report = Path(record["report"])
    if not report.is_absolute():
        report = fresh_clone / report
    page = browser.open(report.as_uri())
    assert page.errors == []
    schemes = {url.split(":", 1)[0] for url in browser.requested_urls()}
    assert schemes <= {"file", "data"}
    images = browser.evaluate(
        "Array.from(document.images).map(i => "
        "[i.alt, i.complete, i.naturalWidth, i.naturalHeight, Number(i.dataset.series)])"
    )
    assert len(images) == PANELS
    for alt, complete, width, height, series in images:
        assert complete and width > 0 and height > 0, alt
        assert series >= 1, f"{alt}: no data in Prometheus"
    shot = browser.screenshot(tmp_path / "report.png")
    width, height = png_size(shot)
    assert width == 1100 and height > PANELS * 290


def test_make_bench_tiny_writes_report_and_plots(fresh_clone: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    flags = f"--steps 20 --batch-size 16 --repeats 1 --tcp-seconds 0.3 --out {out}"
    result = run_make(fresh_clone, make_env(tmp_path), "bench", f"BENCH_FLAGS={flags}", timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    results = json.loads((out / "results.json").read_text())
    one, two = results["runs"]
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert (one["steps"], two["steps"]) == (20, 20)
    assert one["samples_per_second_all_runs"] == [one["samples_per_second"]]
    assert (one["samples"], two["samples"]) == (20 * 16, 2 * 20 * 16)
    assert results["scaling_efficiency"] == pytest.approx(
        two["samples_per_second"] / (2 * one["samples_per_second"])
    )
    assert two["allreduce_bytes"] == 20 * results["model"]["grad_bytes"]
    assert results["tcp"]["bytes_per_second"] > 0
    assert results["busbw_tcp_ratio"] > 0
    assert 0 < two["comm_fraction"] < 1
    assert sum(two["phase_seconds_per_step"].values()) == pytest.approx(two["step_seconds"])

    report = (out / "report.md").read_text()
    plots = sorted(out.glob("*.png"))
    assert len(plots) >= 2
    for plot in plots:
        assert f"]({plot.name})" in report
        width, height = png_size(plot)
        assert width > 300 and height > 150
    assert f"| 2 | {two['samples_per_second']:.1f} |" in report
