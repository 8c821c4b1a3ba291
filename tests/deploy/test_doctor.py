"""`minicluster doctor` on the deployed pair: passes when healthy, names node and check."""

from __future__ import annotations

import re

import pytest

from minicluster.render.launchd import exporter_label
from tests.deploy.conftest import Deployed, Run, minicluster

pytestmark = pytest.mark.e2e

CHECKS = (
    "ssh reachable", "python", "venv", "imports under launchd", "exporter from master", "clock",
    "gloo address", "ports", "checkpoint disk",
)  # fmt: skip
# The master also checks the monitoring services' versions: Debian's Prometheus 2.42 and
# Alertmanager 0.25 behind the brew stand-in, and no Grafana, which is optional.
MASTER_CHECKS = (*CHECKS, "prometheus version", "alertmanager version", "grafana version")


def doctor(deployed: Deployed) -> Run:
    return minicluster("doctor", "--config", str(deployed.cluster.config_path), timeout=300)


def failures(run: Run) -> set[str]:
    """`node: check` pairs from the summary line doctor prints after the table."""
    match = re.search(r"check\(s\) failed: (.*)", run.output)
    return set(match.group(1).strip().split("; ")) if match else set()


def rows(run: Run, node: str) -> dict[str, str]:
    """check name -> result word for `node`, read from the table."""
    found = {}
    for line in run.output.splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) > 4 and cells[1] == node:
            found[cells[2]] = cells[3]
    return found


def test_doctor_passes_on_the_healthy_pair(deployed: Deployed):
    run = doctor(deployed)

    assert run.returncode == 0, run.output
    assert f"all {len(CHECKS) + len(MASTER_CHECKS)} checks passed on 2 nodes" in run.output
    assert rows(run, "mini-red") == dict.fromkeys(MASTER_CHECKS, "ok"), run.output
    assert rows(run, "mini-yellow") == dict.fromkeys(CHECKS, "ok"), run.output


def test_doctor_names_a_killed_exporter_and_a_skewed_clock(deployed: Deployed):
    yellow = deployed.cluster.yellow
    label = exporter_label()
    pid = yellow.service_pid(label)
    yellow.run(["kill", str(pid)])
    try:
        with yellow.clock_offset(2.0):
            run = doctor(deployed)
    finally:
        yellow.run(["launchctl", "kickstart", f"system/{label}"])

    assert run.returncode == 1, run.output
    assert failures(run) == {"mini-yellow: exporter from master", "mini-yellow: clock"}
    clock_detail = next(line for line in run.output.splitlines() if "│ clock" in line and
                        "mini-yellow" in line)  # fmt: skip
    skew_ms = float(re.search(r"([+-][0-9.]+) ms from the master", clock_detail).group(1))
    assert 1900 < skew_ms < 2200  # the faked 2 s, give or take the ssh round trip
    assert "sntp" in clock_detail  # the fix is beside the failure
    assert set(rows(run, "mini-red").values()) == {"ok"}


def test_doctor_names_a_node_whose_sshd_is_stopped(deployed: Deployed):
    yellow = deployed.cluster.yellow
    with yellow.sshd_stopped():
        run = doctor(deployed)

    assert run.returncode == 1, run.output
    assert failures(run) == {"mini-yellow: ssh reachable"}
    assert rows(run, "mini-yellow")["ssh reachable"] == "FAIL"
    # Its exporter still answers the master: that check does not need ssh to mini-yellow.
    assert rows(run, "mini-yellow")["exporter from master"] == "ok"
    assert set(rows(run, "mini-red").values()) == {"ok"}
