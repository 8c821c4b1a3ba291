"""`minicluster bench --allreduce --local`: a real two-rank gloo sweep on loopback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_two_rank_sweep_on_loopback_counts_exact_bytes_and_ring_busbw(tmp_path):
    out = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "minicluster", "bench", "--allreduce", "--local",
         "--sizes", "4K,1M", "--iters", "3", "--tcp-seconds", "0.3", "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((out / "allreduce.json").read_text())
    assert results["world_size"] == 2
    rows = results["rows"]
    assert [r["size"] for r in rows] == [4096, 1 << 20]
    for r in rows:
        assert r["calls"] == 3 and r["bytes"] == r["size"] * 3
        assert r["seconds"] > 0
        assert r["algbw"] == pytest.approx(r["size"] / r["seconds"])
        assert r["busbw"] == pytest.approx(r["algbw"] * 2 * (2 - 1) / 2)
        link = results["tcp"]["bytes_per_second"]
        assert r["busbw_tcp_share"] == pytest.approx(r["busbw"] / link)
    assert results["tcp"]["bytes"] > 0 and results["tcp"]["address"] == "127.0.0.1"
    # One rank per core: the two ranks of the local profile's two nodes never share one.
    cores = sorted(results["pinned"].values())
    assert len(cores) == 2 and cores[0] != cores[1] and all(c.startswith("cpu ") for c in cores)
    report = (out / "allreduce.md").read_text()
    assert "| 1 MB | 262144 | 3 |" in report and "## What to change" in report
    assert (out / "allreduce.png").stat().st_size > 1000
    assert "busbw" in result.stdout.splitlines()[0]
