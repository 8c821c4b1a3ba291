"""Side by side with Debian's node_exporter on this machine (run under the e2e lock).

Both exporters run as processes with the same textfile directory and are scraped
back to back. Every family both publish must have the same type, the same label names
and the same label values; the only differences allowed are the default excludes listed
in docs/exporter-parity.md (Debian's build and node_exporter 1.5 differ from current
upstream there). promtool may flag nothing in our scrape that it does not flag in theirs,
and every collector node_exporter runs here must be in the parity table.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.exporter.conftest import REPO, get
from tests.exporter.test_golden import NODE_EXPORTER_LINT, promtool_problems
from tests.support import free_port, require_tool, wait_until

TEXTFILE = """# HELP lab_backup_age_seconds Age of the last backup.
# TYPE lab_backup_age_seconds gauge
lab_backup_age_seconds{job="models"} 3600
# TYPE lab_jobs_total counter
lab_jobs_total{result="ok"} 12
lab_jobs_total{result="failed",node="mini-red"} 1
"""
NETDEV = re.compile(r"^node_network_(receive|transmit)_\w+$")
# Debian builds node_exporter with --collector.netdev.device-exclude=^lo$ as its default;
# upstream excludes nothing, and neither do we.
NETDEV_EXCLUDED_BY_DEBIAN = re.compile(r"^lo$")
# node_exporter 1.5's diskstats default exclude lacks current upstream's "z?ram".
DISK_EXCLUDED_UPSTREAM_ONLY = re.compile(r"^zram\d+$")
# Mount points node_exporter 1.5 skips by default and current upstream does not ...
MOUNTS_EXCLUDED_BY_1_5 = re.compile(
    r"^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
# ... and the other way round.
MOUNTS_EXCLUDED_UPSTREAM_ONLY = re.compile(r"^/run/credentials/.+")
# Fields current node_exporter collects by default that 1.5 did not (netstat since 1.7);
# promtool's camelCase lint on them has no counterpart in the 1.5 scrape.
NEWER_UPSTREAM_NETSTAT = ("node_netstat_TcpExt_TCPOFOQueue", "node_netstat_TcpExt_TCPRcvQDrop")
PARITY_DOC = REPO / "docs" / "exporter-parity.md"

pytestmark = pytest.mark.integration  # starts node_exporter


def families(text: str) -> dict[str, tuple[str, set[tuple]]]:
    """name -> (type, {sorted label items of each sample})."""
    result = {}
    for family in text_string_to_metric_families(text):
        series = {tuple(sorted(sample.labels.items())) for sample in family.samples}
        result[family.name] = (family.type, series)
    return result


def allowed(name: str, labels: tuple, ours_only: bool) -> bool:
    """A series one side has and the other has not, for a documented reason."""
    values = dict(labels)
    device = values.get("device", "")
    if NETDEV.match(name):
        return ours_only and bool(NETDEV_EXCLUDED_BY_DEBIAN.match(device))
    if name.startswith("node_disk_"):
        return not ours_only and bool(DISK_EXCLUDED_UPSTREAM_ONLY.match(device))
    if name.startswith("node_filesystem_"):
        mountpoint = values.get("mountpoint", "")
        pattern = MOUNTS_EXCLUDED_BY_1_5 if ours_only else MOUNTS_EXCLUDED_UPSTREAM_ONLY
        return bool(pattern.match(mountpoint))
    return False


@pytest.fixture(scope="module")
def scrapes(tmp_path_factory) -> tuple[str, str]:
    node_exporter = require_tool(
        "prometheus-node-exporter", "apt-get install prometheus-node-exporter"
    )
    textfiles = tmp_path_factory.mktemp("textfile")
    (textfiles / "lab.prom").write_text(TEXTFILE)
    workdir = tmp_path_factory.mktemp("parity")
    ours_port, theirs_port = free_port(), free_port()
    ours = subprocess.Popen(
        [
            str(REPO / ".venv" / "bin" / "python"),
            *("-m", "minicluster.exporter", "--listen", f"127.0.0.1:{ours_port}"),
            f"--collector.textfile.directory={textfiles}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=workdir,
    )
    theirs = subprocess.Popen(
        [
            node_exporter,
            f"--web.listen-address=127.0.0.1:{theirs_port}",
            f"--collector.textfile.directory={textfiles}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for port, what in [(ours_port, "our exporter"), (theirs_port, "node_exporter")]:
            wait_until(lambda p=port: get(f"http://127.0.0.1:{p}/metrics").ok, f"{what} to answer")
        text_ours = get(f"http://127.0.0.1:{ours_port}/metrics").text
        text_theirs = get(f"http://127.0.0.1:{theirs_port}/metrics").text
    finally:
        for process in (ours, theirs):
            process.terminate()
            process.wait(10)
    return text_ours, text_theirs


def test_every_shared_family_has_the_same_type_labels_and_label_values(scrapes):
    ours, theirs = (families(text) for text in scrapes)
    shared = set(ours) & set(theirs)
    # The collectors both run here: a broad overlap, not a handful of families.
    assert len(shared) >= 200, sorted(shared)
    assert "lab_backup_age_seconds" in shared and "lab_jobs" in shared  # from the textfile
    problems = []
    # The collector label differs by design (each runs its own set); the table covers it.
    scrape = {"node_scrape_collector_duration_seconds", "node_scrape_collector_success"}
    for name in sorted(shared - scrape):
        (our_type, our_series), (their_type, their_series) = ours[name], theirs[name]
        if our_type != their_type:
            problems.append(f"{name}: type {our_type}, node_exporter {their_type}")
        our_names = {tuple(k for k, _ in labels) for labels in our_series}
        their_names = {tuple(k for k, _ in labels) for labels in their_series}
        if our_names != their_names:
            problems.append(f"{name}: labels {our_names}, node_exporter {their_names}")
            continue
        for labels in our_series - their_series:
            if not allowed(name, labels, ours_only=True):
                problems.append(f"{name}{dict(labels)} only in ours")
        for labels in their_series - our_series:
            if not allowed(name, labels, ours_only=False):
                problems.append(f"{name}{dict(labels)} only in node_exporter's")
    assert problems == []


def test_promtool_flags_nothing_in_ours_that_it_does_not_flag_in_node_exporters(scrapes):
    ours, theirs = scrapes
    our_problems = promtool_problems(ours)
    their_problems = set(promtool_problems(theirs))
    assert [p for p in our_problems if not NODE_EXPORTER_LINT.match(p)] == []
    newer = NEWER_UPSTREAM_NETSTAT
    extra = [p for p in our_problems if p not in their_problems and not p.startswith(newer)]
    assert extra == []


def test_every_collector_node_exporter_runs_here_is_in_the_parity_table(scrapes):
    _, theirs = scrapes
    collectors = {
        dict(labels)["collector"] for labels in families(theirs)["node_scrape_collector_success"][1]
    }
    table = Path(PARITY_DOC).read_text()
    listed = set(re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE))
    assert collectors - listed == set()
