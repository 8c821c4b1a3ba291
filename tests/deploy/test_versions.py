"""deploy.versions on recorded `--version` outputs (tests/deploy/fixtures/versions/SOURCES.md
says where each comes from): the version read, the minimum enforced, the fix named."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from minicluster.core.config import load_config
from minicluster.deploy import doctor, versions
from tests.support import EXAMPLE_CONFIG

FIXTURES = Path(__file__).parent / "fixtures" / "versions"
README = Path(__file__).resolve().parents[2] / "README.md"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


@pytest.mark.parametrize(
    ("service", "name", "expected"),
    [
        ("prometheus", "prometheus-2.42.0-debian12.txt", (2, 42, 0)),
        ("prometheus", "prometheus-3.11.2.txt", (3, 11, 2)),
        ("prometheus", "prometheus-2.27.0.txt", (2, 27, 0)),
        ("alertmanager", "alertmanager-0.25.0-debian12.txt", (0, 25, 0)),
        ("alertmanager", "alertmanager-0.32.1.txt", (0, 32, 1)),
        ("grafana", "grafana-12.2.0.txt", (12, 2, 0)),
        ("grafana", "grafana-13.0.0.txt", (13, 0, 0)),
        ("grafana", "grafana-server-6.7.1.txt", (6, 7, 1)),
    ],
)
def test_the_version_is_read_from_each_recorded_output(service, name, expected):
    assert versions.parse_version(service, fixture(name)) == expected


def test_every_fixture_is_covered_and_has_its_source_named():
    sources = fixture("SOURCES.md")
    names = sorted(p.name for p in FIXTURES.glob("*.txt"))
    assert len(names) == 8
    for name in names:
        assert f"`{name}`" in sources or name.replace(".txt", "") in sources, name


def test_one_service_never_reads_anothers_output():
    assert versions.parse_version("alertmanager", fixture("prometheus-3.11.2.txt")) is None
    assert versions.parse_version("prometheus", fixture("alertmanager-0.32.1.txt")) is None
    assert versions.parse_version("grafana", fixture("prometheus-3.11.2.txt")) is None


@pytest.mark.parametrize(
    ("service", "name"),
    [
        ("prometheus", "prometheus-2.42.0-debian12.txt"),
        ("prometheus", "prometheus-3.11.2.txt"),
        ("alertmanager", "alertmanager-0.25.0-debian12.txt"),
        ("alertmanager", "alertmanager-0.32.1.txt"),
        ("grafana", "grafana-12.2.0.txt"),
        ("grafana", "grafana-13.0.0.txt"),
    ],
)
def test_supported_versions_pass(service, name):
    result = versions.assess(service, f"/opt/homebrew/bin/{service}", fixture(name))
    assert result.ok is True
    assert result.detail.endswith(f"(>= {versions.dotted(versions.MINIMUMS[service])})")
    assert result.fix == ""


def test_an_old_prometheus_is_a_warning_with_the_upgrade_beside_it():
    output = fixture("prometheus-2.27.0.txt")
    result = versions.assess("prometheus", "/opt/homebrew/bin/prometheus", output)
    assert (result.ok, result.warning) == (True, True)
    assert result.detail == "2.27.0 is older than 2.42.0, the oldest minicluster supports"
    assert result.fix == "brew upgrade prometheus"


def test_an_old_grafana_outside_homebrew_names_the_version_to_install():
    output = fixture("grafana-server-6.7.1.txt")
    result = versions.assess("grafana", "/usr/sbin/grafana-server", output)
    assert (result.ok, result.warning) == (True, True)
    assert result.detail == "6.7.1 is older than 12.2.0, the oldest minicluster supports"
    assert result.fix == "install grafana 12.2.0 or newer at /usr/sbin/grafana-server"


def test_missing_grafana_is_fine_missing_prometheus_is_not():
    grafana = versions.assess("grafana", "/opt/homebrew/bin/grafana", "", optional=True)
    assert grafana.ok is True
    assert grafana.detail == "not installed at /opt/homebrew/bin/grafana (optional)"
    prom = versions.assess("prometheus", "/opt/homebrew/bin/prometheus", "")
    assert (prom.ok, prom.detail) == (False, "/opt/homebrew/bin/prometheus is missing")
    assert prom.fix == "make deploy (brew upgrade prometheus)"


def test_output_without_a_version_is_a_failure_that_quotes_it():
    result = versions.assess("alertmanager", "/usr/bin/am", "exec format error\n")
    assert result.ok is False
    assert result.detail == "/usr/bin/am printed no version: 'exec format error'"


def test_the_master_command_runs_each_binary_and_splits_per_service(tmp_path):
    """The real shell on stand-in binaries: one prints a recorded output, one is missing."""
    prom = tmp_path / "prometheus"
    prom.write_text(f"#!/bin/sh\ncat {FIXTURES / 'prometheus-3.11.2.txt'}\n")
    prom.chmod(0o755)
    grafana_server = tmp_path / "grafana-server"
    grafana_server.write_text(
        f'#!/bin/sh\n[ "$1" = "-v" ] && cat {FIXTURES / "grafana-server-6.7.1.txt"}\n'
    )
    grafana_server.chmod(0o755)
    binaries = {
        "prometheus": str(prom),
        "alertmanager": str(tmp_path / "missing" / "alertmanager"),
        "grafana": str(grafana_server),
    }
    command = versions.master_command(binaries)
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout
    sections = versions.split_master_output(out)
    assert sections == {
        "prometheus": fixture("prometheus-3.11.2.txt").strip(),
        "alertmanager": "",
        "grafana": fixture("grafana-server-6.7.1.txt").strip(),
    }


def test_grafana_version_flag_follows_the_binary():
    assert versions.version_command("grafana", "/opt/homebrew/bin/grafana").endswith(
        "grafana --version 2>&1"
    )
    assert versions.version_command("grafana", "/usr/sbin/grafana-server").endswith(
        "grafana-server -v 2>&1"
    )


def test_the_readme_states_the_minimums_doctor_checks():
    text = " ".join(README.read_text().split())
    stated = re.search(r"Prometheus (\S+), Alertmanager (\S+) and Grafana (\S+) or newer", text)
    assert stated, "README: the supported minimum versions"
    for service, version in zip(versions.MINIMUMS, stated.groups(), strict=True):
        assert version == versions.dotted(versions.MINIMUMS[service][:2]), service


# --- Grafana's dashboard API ------------------------------------------------------------


def test_dashboard_path_prefers_the_ga_version():
    grafana13 = {"versions": [{"version": "v2"}, {"version": "v1"}, {"version": "v1beta1"}]}
    assert versions.dashboard_api_path(grafana13, "minicluster-network") == (
        "/apis/dashboard.grafana.app/v1/namespaces/default/dashboards/minicluster-network"
    )
    grafana12 = {"versions": [{"version": "v1beta1"}, {"version": "v0alpha1"}]}
    assert versions.dashboard_api_path(grafana12, "x") == (
        "/apis/dashboard.grafana.app/v1beta1/namespaces/default/dashboards/x"
    )


def test_dashboard_path_refuses_a_grafana_without_a_stable_dashboard_api():
    with pytest.raises(ValueError, match=r"none of v1, v1beta1 .* needs Grafana 12\.2\.0"):
        versions.dashboard_api_path({"versions": [{"version": "v0alpha1"}]}, "x")


# --- the doctor rows on the master ----------------------------------------------------


class _Master:
    """A master whose shell answers the version command with recorded outputs."""

    def __init__(self, outputs: dict[str, str]):
        self.node = load_config(EXAMPLE_CONFIG).master
        self.outputs = outputs
        self.commands: list[str] = []

    def run(self, command: str) -> tuple[bool, str, str]:
        self.commands.append(command)
        answer = "".join(
            f"==minicluster-version== {service}\n{self.outputs.get(service, '')}"
            for service in ("prometheus", "alertmanager", "grafana")
        )
        return True, answer, ""


def test_doctor_reports_each_version_on_the_master_and_warns_of_an_old_one():
    config = load_config(EXAMPLE_CONFIG)
    master = _Master(
        {
            "prometheus": fixture("prometheus-3.11.2.txt"),
            "alertmanager": fixture("alertmanager-0.25.0-debian12.txt"),
            "grafana": fixture("grafana-server-6.7.1.txt"),
        }
    )
    checks = doctor.check_stack_versions(master, config)
    assert [(c.node, c.name, c.ok, c.warning) for c in checks] == [
        ("mini-red", "prometheus version", True, False),
        ("mini-red", "alertmanager version", True, False),
        ("mini-red", "grafana version", True, True),
    ]
    assert doctor.failed(checks) == []
    assert checks[0].detail == "3.11.2 (>= 2.42.0)"
    assert checks[2].fix == "brew upgrade grafana"
    assert "/opt/homebrew/bin/grafana --version 2>&1" in master.commands[0]


def test_no_answer_from_the_master_is_an_error_not_three_missing_binaries():
    class Silent(_Master):
        def run(self, command):
            return False, "", "zsh: permission denied"

    with pytest.raises(RuntimeError, match="no version answer from the master: zsh"):
        doctor.check_stack_versions(Silent({}), load_config(EXAMPLE_CONFIG))


def test_an_old_version_shows_as_a_warning_with_its_fix_and_doctor_still_passes():
    from io import StringIO

    from rich.console import Console

    from minicluster.commands.doctor import table

    old = doctor.Check("mini-red", "grafana version", True, "6.7.1 is older than 12.2.0",
                       "brew upgrade grafana", warning=True)  # fmt: skip
    for width in (80, 250):
        out = StringIO()
        Console(file=out, width=width, color_system=None).print(table([old], width))
        text = out.getvalue()
        assert "warn" in text and "brew upgrade grafana" in text and "FAIL" not in text
