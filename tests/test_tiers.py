"""The tier markers are enforced: a test that starts a program of a higher tier fails,
and the program never starts."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import E2E, FAST, INTEGRATION, required_tier
from tests.support import REPO

PY = sys.executable


@pytest.mark.parametrize(
    ("argv", "tier"),
    [
        (["/usr/bin/promtool", "check", "rules", "x.yml"], FAST),
        (["amtool", "check-config", "a.yml"], FAST),
        (["git", "clone", "-q", "a", "b"], FAST),
        ([PY, "-c", "print(1)"], FAST),
        (["/usr/sbin/ip", "netns", "add", "mc-red"], E2E),
        (["nsenter", "--net=/run/netns/x", "true"], E2E),
        (["tc", "qdisc", "add", "dev", "veth0", "root", "netem"], E2E),
        (["/usr/bin/prometheus", "--config.file=p.yml"], INTEGRATION),
        (["/usr/sbin/sshd", "-D", "-f", "cfg"], INTEGRATION),
        (["ssh", "-o", "BatchMode=yes", "root@10.0.0.2", "true"], INTEGRATION),
        (["/x/venv/bin/torchrun", "--nproc-per-node", "2", "t.py"], INTEGRATION),
        ([PY, "-m", "torch.distributed.run", "--standalone", "t.py"], INTEGRATION),
        (["/x/bin/python3.12", "-m", "torch.distributed.run", "t.py"], INTEGRATION),
        ([PY, "-m", "minicluster", "demo", "--once"], INTEGRATION),
        ([PY, "-m", "minicluster", "config", "check"], FAST),
        (["/x/.venv/bin/minicluster", "run-job", "--local"], INTEGRATION),
        (["/x/.venv/bin/minicluster", "render", "--out", "d"], FAST),
        (["make", "-n", "-o", ".venv/.installed", "status"], FAST),
        (["make", "demo"], INTEGRATION),
        (["make", "-o", ".venv/.installed", "status", "CONFIG=c.yaml"], FAST),
        (["make", "-o", ".venv/.installed", "run-job", "LOCAL=1"], INTEGRATION),
        (["make", "-o", ".venv/.installed", "test"], E2E),
        (["make", "status"], INTEGRATION),
        (["/bin/sh", "-c", "exec /usr/sbin/sshd -D -e"], INTEGRATION),
        (["bash", "-c", "ip netns exec red true"], E2E),
        (["sh", "-c", "cd /x && python -m torch.distributed.run t.py"], INTEGRATION),
        (["env", "-i", "A=1", "ip", "link"], E2E),
        (["/usr/bin/env", "PATH=/x", PY, "-m", "torch.distributed.run", "t"], INTEGRATION),
        (["timeout", "-s", "KILL", "10", "prometheus"], INTEGRATION),
        (["setsid", "alertmanager", "--config.file=a.yml"], INTEGRATION),
        ([b"/usr/sbin/ip", b"link"], E2E),
        (["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "prometheus"], FAST),
        (["/x/.venv/bin/minicluster", "demo", "--stop"], FAST),
        (["/x/.venv/bin/minicluster", "logs", "j1", "--config", "c.yaml"], FAST),
        ([], FAST),
    ],
)
def test_the_tier_a_command_needs(argv, tier):
    assert required_tier(argv) == tier


def test_programs_a_test_wrote_into_its_tmp_path_run_in_any_tier(tmp_path):
    fake = tmp_path / "fake-bin" / "ssh"
    assert required_tier([str(fake), "-T", "node", "true"]) == FAST
    assert required_tier(["sh", "-c", f"{fake} node true"]) == FAST
    assert required_tier(["/usr/bin/ssh", "-T", "node", "true"]) == INTEGRATION


INNER = """
import os
import subprocess

import pytest

BIN = {bin!r}


def run(name, *args):
    return subprocess.run([os.path.join(BIN, name), *args], check=True)


def test_fast_promtool():
    run("promtool", "fast")


def test_fast_prometheus():
    run("prometheus", "fast")


def test_fast_swallows_the_error():
    try:
        run("alertmanager", "swallowed")
    except Exception:
        pass


def test_fast_shell():
    subprocess.run(f"{{BIN}}/sshd shell", shell=True)


def test_fast_os_system():
    os.system(f"{{BIN}}/ip system")


def test_fast_torchrun_module():
    subprocess.run([{python!r}, "-m", "torch.distributed.run", "--help"],
                   capture_output=True)


@pytest.fixture
def daemon():
    run("prometheus", "fixture-setup")
    yield


def test_fast_with_a_daemon_fixture(daemon):
    pass


@pytest.fixture
def cleanup():
    yield
    run("ip", "teardown")


def test_fast_cleans_up_in_teardown(cleanup):
    pass


@pytest.mark.integration
def test_integration_prometheus():
    run("prometheus", "integration")


@pytest.mark.integration
def test_integration_namespace():
    run("ip", "integration")


@pytest.mark.e2e
def test_e2e_both():
    run("ip", "e2e")
    run("sshd", "e2e")
"""


def test_the_guard_fails_tests_above_their_tier_and_starts_nothing(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "started.log"
    for name in ("promtool", "prometheus", "alertmanager", "sshd", "ip"):
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n')
        tool.chmod(0o755)
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_inner.py").write_text(
        textwrap.dedent(INNER).format(bin=str(bin_dir), python=sys.executable)
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-rA", "-q", "--rootdir", str(suite), str(suite)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    outcomes = {}
    for line in result.stdout.splitlines():
        parts = line.split(" ", 2)
        if len(parts) >= 2 and parts[0] in ("PASSED", "FAILED", "ERROR"):
            outcomes[parts[1].split("::")[-1]] = parts[0]
    assert outcomes == {
        "test_fast_promtool": "PASSED",
        "test_fast_prometheus": "FAILED",
        "test_fast_swallows_the_error": "FAILED",
        "test_fast_shell": "FAILED",
        "test_fast_os_system": "FAILED",
        "test_fast_torchrun_module": "FAILED",
        "test_fast_with_a_daemon_fixture": "ERROR",
        "test_fast_cleans_up_in_teardown": "PASSED",
        "test_integration_prometheus": "PASSED",
        "test_integration_namespace": "FAILED",
        "test_e2e_both": "PASSED",
    }, result.stdout
    # Only what was allowed ever ran.
    assert sorted(log.read_text().splitlines()) == [
        "ip e2e",
        "ip teardown",
        "prometheus integration",
        "promtool fast",
        "sshd e2e",
    ]
    assert (
        "test_inner.py::test_fast_prometheus starts" in result.stdout
        and "which needs @pytest.mark.integration" in result.stdout
    )
    assert "which needs @pytest.mark.e2e" in result.stdout
