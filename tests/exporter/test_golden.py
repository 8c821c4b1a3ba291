"""End to end on fixture sources, diffed against golden files; promtool on them and live.

`UPDATE_GOLDEN=1 pytest tests/exporter/test_golden.py` rewrites the golden files.
Collector durations vary from run to run and are left out (as node_exporter's
end-to-end-test.sh does).
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess

import pytest
from prometheus_client.exposition import generate_latest

from minicluster.exporter.exposition import TextEncoder
from tests.exporter.conftest import get, make_options, samples, value
from tests.exporter.fakes import FIXTURES, darwin_sources, linux_sources
from tests.support import require_tool

GOLDEN = {
    "linux": FIXTURES / "e2e-output.txt",
    "darwin": FIXTURES / "e2e-output-darwin.txt",
}
VARYING = re.compile(r"^node_scrape_collector_duration_seconds\{")
# What promtool flags in node_exporter's own names, on its scrape as on ours: the kernel's
# field names (node_memory_MemTotal_bytes, node_netstat_Tcp_InSegs) and entropy in bits.
NODE_EXPORTER_LINT = re.compile(
    r"^((node_memory|node_netstat)_\w+ metric names should be written in 'snake_case'"
    r"|node_entropy_\w+_bits use base unit \"bytes\" instead of \"bits\")"
)


def normalise(text: str) -> str:
    """Without the per-scrape durations, and with the checkout's fixture folder (named in the
    textfile collector's HELP lines) written as <fixtures>, so any clone compares equal."""
    text = text.replace(str(FIXTURES), "<fixtures>")
    return "".join(line + "\n" for line in text.splitlines() if not VARYING.match(line))


def promtool_problems(text: str) -> list[str]:
    promtool = require_tool("promtool", "apt-get install prometheus (it ships promtool)")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    problems = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 0 or problems, result
    return problems


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_fixture_scrape_matches_golden_file(serve, tmp_path, platform):
    sources = linux_sources() if platform == "linux" else darwin_sources()
    server = serve(make_options(tmp_path), sources, platform)
    response = get(server.url + "/metrics")
    assert response.status_code == 200
    got = normalise(response.text)
    golden = GOLDEN[platform]
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(got)
    expected = golden.read_text()
    diff = "".join(
        difflib.unified_diff(expected.splitlines(True), got.splitlines(True), str(golden), "scrape")
    )
    assert not diff, f"scrape differs from the golden file (UPDATE_GOLDEN=1 rewrites it):\n{diff}"


def test_darwin_golden_file_is_promtool_clean():
    assert promtool_problems(GOLDEN["darwin"].read_text()) == []


def test_linux_golden_file_has_only_node_exporters_own_lint():
    """node_exporter's Linux names come straight from /proc (node_memory_MemTotal_bytes,
    node_netstat_Tcp_InSegs) and promtool flags their camelCase, and the entropy in bits;
    nothing else may be flagged."""
    problems = promtool_problems(GOLDEN["linux"].read_text())
    assert problems, "expected the meminfo names to be flagged"
    assert [p for p in problems if not NODE_EXPORTER_LINT.match(p)] == []


@pytest.mark.integration
class Families:
    """What generate_latest takes: anything with collect()."""

    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


def test_encoder_output_parses_back_to_prometheus_clients_samples(tmp_path):
    """The cached text encoder says exactly what prometheus_client's encoder says."""
    from minicluster.exporter.registry import build_collectors
    from minicluster.exporter.scrape import ScrapeGuard

    options = make_options(tmp_path)
    for platform, sources in [("linux", linux_sources()), ("darwin", darwin_sources())]:
        guard = ScrapeGuard(build_collectors(options, platform, sources), 5)
        encoder = TextEncoder()
        for _ in range(3):  # the first from nothing, the others from what the last one left
            families = guard.scrape()
            ours = encoder.encode(families).decode()
            again = encoder.encode(families).decode()
            reference = generate_latest(Families(families)).decode()
            assert ours == again
            assert samples(ours) == samples(reference)
            headers = [line for line in ours.splitlines() if line.startswith("#")]
            assert headers == [line for line in reference.splitlines() if line.startswith("#")]


def test_encoder_caches_are_bounded():
    from prometheus_client.core import GaugeMetricFamily

    from minicluster.exporter import exposition

    encoder = TextEncoder()
    for start in range(0, 10_000, 1000):  # interfaces that come and go
        family = GaugeMetricFamily("test_churn", "interfaces that come and go", labels=["dev"])
        for i in range(start, start + 1000):
            family.add_metric([f"veth{i}"], i)
        text = encoder.encode([family]).decode()
        assert value(text, "test_churn", dev=f"veth{start + 999}") == start + 999
    assert len(encoder._families) == 1  # one family, whatever its series were
    for i in range(exposition.MAX_CACHED_FAMILIES * 2):  # textfile families that come and go
        labelled = GaugeMetricFamily(f"test_family_{i}", "one of many", labels=["dev"])
        labelled.add_metric(["a"], i)
        single = GaugeMetricFamily(f"test_single_{i}", "one of many", value=i)
        text = encoder.encode([labelled, single]).decode()
        assert value(text, f"test_family_{i}", dev="a") == i
        assert value(text, f"test_single_{i}") == i
    for cache in (encoder._families, encoder._singles, encoder._headers):
        assert len(cache) <= exposition.MAX_CACHED_FAMILIES + 2


def test_encoder_text_follows_every_change():
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    encoder = TextEncoder()

    def bytes_read(values: dict[str, float]) -> str:
        family = CounterMetricFamily("test_read_bytes", "read", labels=["device"])
        for device, number in values.items():
            family.add_metric([device], number)
        return encoder.encode([family]).decode()

    assert bytes_read({"sda": 1.0, "sdb": 2.0}) == bytes_read({"sda": 1.0, "sdb": 2.0})
    changed = bytes_read({"sda": 1.0, "sdb": 3.0})
    assert value(changed, "test_read_bytes_total", device="sdb") == 3.0
    swapped = bytes_read({"sdb": 1.0, "sda": 3.0})  # same values, series in another order
    assert value(swapped, "test_read_bytes_total", device="sda") == 3.0
    assert value(swapped, "test_read_bytes_total", device="sdb") == 1.0
    gone = bytes_read({"sda": 1.0})
    assert "sdb" not in gone and value(gone, "test_read_bytes_total", device="sda") == 1.0

    def load(number: float, help_text: str = "load", kind=GaugeMetricFamily) -> str:
        return encoder.encode([kind("test_load", help_text, value=number)]).decode()

    assert (
        load(0.5) == load(0.5) == "# HELP test_load load\n# TYPE test_load gauge\ntest_load 0.5\n"
    )
    assert value(load(0.75), "test_load") == 0.75
    assert value(load(float("nan")), "test_load") != value(load(float("nan")), "test_load")
    assert "# HELP test_load the load\n" in load(0.75, "the load")  # new help, same value
    assert "test_load_total 0.75\n" in load(0.75, "the load", CounterMetricFamily)


def test_encoder_escapes_label_values_and_formats_special_values():
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily("test_value", "help with \\ and\nnewline", labels=["path"])
    family.add_metric(['C:\\dir "quoted"\nnext'], float("nan"))
    family.add_metric(["inf"], float("inf"))
    family.add_metric(["neg"], float("-inf"))
    family.add_metric(["big"], 187364912384)
    text = TextEncoder().encode([family]).decode()
    assert text == (
        "# HELP test_value help with \\\\ and\\nnewline\n"
        "# TYPE test_value gauge\n"
        'test_value{path="C:\\\\dir \\"quoted\\"\\nnext"} NaN\n'
        'test_value{path="inf"} +Inf\n'
        'test_value{path="neg"} -Inf\n'
        'test_value{path="big"} 187364912384\n'
    )
    parsed = samples(text)
    assert parsed[("test_value", frozenset({("path", 'C:\\dir "quoted"\nnext')}))] != 0
