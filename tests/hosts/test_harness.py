"""The two simulated Minis: reachable, separate, and a launchctl stand-in that acts like launchd."""

from __future__ import annotations

import json
import plistlib
import time

import pytest

from tests.hosts.cluster import SimulatedCluster, SimulatedHost, base_python
from tests.hosts.network import ip
from tests.hosts.stranger import Stranger, stranger_on
from tests.support import wait_until

pytestmark = pytest.mark.e2e

LABEL = "io.minicluster.harness-test"
# Prints where a launchd job runs and as whom, then waits, saying when it gets SIGHUP.
PROGRAM = (
    "import json, os, signal, sys, time\n"
    "print(json.dumps({'cwd': os.getcwd(), 'uid': os.getuid()}), flush=True)\n"
    "signal.signal(signal.SIGHUP, lambda *a: print('reload', flush=True))\n"
    "while True: time.sleep(0.05)\n"
)


def install_plist(host: SimulatedHost, workdir: str) -> str:
    path = f"/Library/LaunchDaemons/{LABEL}.plist"
    plist = {
        "Label": LABEL,
        "ProgramArguments": [base_python(), "-c", PROGRAM],
        "UserName": "root",
        "WorkingDirectory": workdir,
        "EnvironmentVariables": {"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"},
        "RunAtLoad": True,
        "KeepAlive": True,
        "ExitTimeOut": 5,
        "StandardOutPath": f"{workdir}/job.out.log",
        "StandardErrorPath": f"{workdir}/job.err.log",
    }
    host.path(path).write_bytes(plistlib.dumps(plist))
    return path


def test_hosts_answer_ssh_as_themselves(two_minis: SimulatedCluster):
    for host in two_minis.hosts.values():
        out = host.ssh("hostname; ip -4 -o addr show dev en0; command -v launchctl").stdout
        name, address_line, launchctl = out.strip().split("\n")
        assert name == host.name
        assert f"inet {host.address}/24" in address_line
        assert launchctl == "/usr/local/sbin/launchctl"
    # mini-red reaches mini-yellow's sshd over the simulated LAN.
    probe = f"exec 3<>/dev/tcp/{two_minis.yellow.address}/22 && head -c 4 <&3"
    assert two_minis.red.run(["bash", "-c", probe]).stdout == "SSH-"


def test_each_host_has_its_own_install_dir_and_daemons(two_minis: SimulatedCluster):
    red, yellow = two_minis.red, two_minis.yellow
    red.run("mkdir -p /opt/minicluster && echo red > /opt/minicluster/owner")
    try:
        assert red.ssh("cat /opt/minicluster/owner").stdout == "red\n"
        assert yellow.run(["test", "-e", "/opt/minicluster/owner"], check=False).returncode == 1
        assert red.path("/opt/minicluster/owner").read_text() == "red\n"
    finally:
        red.run(["rm", "-f", "/opt/minicluster/owner"])


def test_launchctl_standin_starts_jobs_the_way_launchd_does(two_minis: SimulatedCluster):
    host = two_minis.yellow
    workdir = "/opt/harness-test"
    host.run(["mkdir", "-p", workdir])
    plist = install_plist(host, workdir)
    try:
        # ssh sessions carry PATH and PIP_* variables; the job must see none of them.
        host.ssh(f"launchctl bootstrap system {plist}")
        log = host.path(f"{workdir}/job.out.log")
        seen = wait_until(lambda: log.exists() and log.read_text().strip(), "the job's output")
        first = json.loads(seen.splitlines()[0])
        assert first["cwd"] == workdir and first["uid"] == 0
        pid = host.service_pid(LABEL)
        # The environment it was started with (Python itself adds LC_CTYPE, PEP 538).
        environ = host.run(["cat", f"/proc/{pid}/environ"]).stdout.split("\0")
        assert sorted(filter(None, environ)) == ["PATH=/usr/bin:/bin", "PYTHONUNBUFFERED=1"]
        assert pid and host.launchd_job(LABEL)["runs"] == 1

        again = host.run(["launchctl", "bootstrap", "system", plist], check=False)
        assert again.returncode == 5  # launchd refuses a second bootstrap of a loaded job

        host.run(["launchctl", "kill", "SIGHUP", f"system/{LABEL}"])
        wait_until(lambda: "reload" in log.read_text(), "the job to see SIGHUP")
        assert host.service_pid(LABEL) == pid

        host.run(["launchctl", "kickstart", "-k", f"system/{LABEL}"])
        new_pid = host.service_pid(LABEL)
        assert new_pid and new_pid != pid
        assert not host.alive(pid)

        host.run(["launchctl", "bootout", f"system/{LABEL}"])
        assert not host.alive(new_pid)
        gone = host.run(["launchctl", "print", f"system/{LABEL}"], check=False)
        assert gone.returncode == 113 and "Could not find service" in gone.stderr
    finally:
        host.run(["launchctl", "bootout", f"system/{LABEL}"], check=False)
        host.run(["rm", "-rf", workdir, plist])


def test_clock_offset_shifts_only_that_hosts_date(two_minis: SimulatedCluster):
    yellow, red = two_minis.yellow, two_minis.red
    with yellow.clock_offset(2.5):
        before = time.time()
        shifted = float(yellow.ssh("date +%s.%N").stdout)
        after = time.time()
        assert before + 2.5 <= shifted <= after + 2.5
        assert abs(float(red.ssh("date +%s.%N").stdout) - time.time()) < 2
    assert abs(float(yellow.ssh("date +%s.%N").stdout) - time.time()) < 2


def test_stopped_sshd_refuses_and_restarts(two_minis: SimulatedCluster):
    yellow = two_minis.yellow
    with yellow.sshd_stopped():
        refused = yellow.ssh("true", check=False)
        assert refused.returncode == 255
        assert "Connection refused" in refused.stderr
    assert yellow.ssh("echo back").stdout == "back\n"


@pytest.fixture(autouse=True)
def _no_leftover_jobs(two_minis: SimulatedCluster):
    yield
    for host in two_minis.hosts.values():
        assert host.launchd_job(LABEL) is None


def test_brew_standin_links_the_hosts_packages_the_way_homebrew_does(two_minis: SimulatedCluster):
    host = two_minis.yellow  # the worker: deploy never asks its brew for anything
    assert host.brew("--prefix").stdout == "/opt/homebrew\n"
    assert host.brew("--version").stdout.startswith("Homebrew 4.")
    # As on a Mac, Homebrew is not on the PATH an ssh session gets.
    assert host.ssh("command -v brew || echo none").stdout == "none\n"
    assert host.brew("list", "--versions").stdout == ""
    try:
        host.brew("install", "alertmanager")
        assert host.brew("list", "--versions").stdout == "alertmanager 0.25.0\n"
        amtool = host.ssh("/opt/homebrew/bin/amtool --version 2>&1").stdout
        assert "amtool, version 0.25.0" in amtool
        assert host.run(["readlink", "/opt/homebrew/opt/alertmanager"]).stdout == (
            "../Cellar/alertmanager/0.25.0\n"
        )
        again = host.brew("install", "alertmanager")
        assert "already installed" in again.stderr
        missing = host.brew("install", "grafana", check=False)
        assert missing.returncode == 1
        assert 'No available formula with the name "grafana"' in missing.stderr
    finally:
        host.brew("uninstall", "alertmanager", check=False)
    assert host.brew("list", "--versions").stdout == ""
    assert not host.path("/opt/homebrew/bin/amtool").exists()


def test_gid_0_is_wheel_as_on_macos(two_minis: SimulatedCluster):
    for host in two_minis.hosts.values():
        assert host.ssh("stat -c %G /Library/LaunchDaemons").stdout == "wheel\n"
        made = host.ssh("touch /opt/g; chown root:wheel /opt/g && stat -c %G /opt/g; rm /opt/g")
        assert made.stdout == "wheel\n"


def test_a_stranger_on_the_lan_reaches_the_hosts_but_is_not_one(
    two_minis: SimulatedCluster, stranger: Stranger
):
    assert stranger.address not in two_minis.lan.addresses.values()
    assert stranger.netns not in two_minis.lan.namespaces.values()
    address_line = stranger.run(["ip", "-4", "-o", "addr", "show", "dev", "en0"]).stdout
    assert f"inet {stranger.address}/24" in address_line
    for host in two_minis.hosts.values():  # same switch: each host's sshd answers it
        probe = f"exec 3<>/dev/tcp/{host.address}/22 && head -c 4 <&3"
        assert stranger.run(["bash", "-c", probe]).stdout == "SSH-"
    # It holds none of the harness's credentials: ssh with its defaults gets no shell.
    denied = stranger.run(
        ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes",
         "-o", "IdentityFile=/dev/null", f"root@{two_minis.red.address}", "true"]
    )  # fmt: skip
    assert denied.returncode == 255 and "Permission denied" in denied.stderr


def test_the_stranger_leaves_nothing_behind(two_minis: SimulatedCluster):
    with stranger_on(two_minis.lan) as outsider:
        netns = outsider.netns
        assert netns in ip("netns", "list").stdout
    assert netns not in ip("netns", "list").stdout
    bridge_ports = ip("-o", "link", "show", "master", two_minis.lan.bridge).stdout
    assert len(bridge_ports.splitlines()) == len(two_minis.hosts)
