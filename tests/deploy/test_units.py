"""Deploy's and doctor's decisions and parsers, on fixtures of real macOS and Linux output."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from minicluster.core.profiles import local_profile
from minicluster.deploy.doctor import CLOCK_COMMAND, free_bytes, interface_addresses, parse_clock
from minicluster.deploy.facts import LaunchdJob, parse_launchctl_print
from minicluster.deploy.inventory import host_data
from minicluster.deploy.plan import (
    exporter_inputs,
    homebrew_formula,
    homebrew_services,
    launchd_environment_command,
)
from minicluster.deploy.probe import remote_command
from minicluster.deploy.services import Change, service_commands
from minicluster.deploy.stack import (
    Stack,
    StackError,
    _check_dashboards,
    services_touched,
    validate_commands,
)
from minicluster.deploy.wheel import build_wheel
from tests.support import free_port

# `launchctl print system/<label>` on macOS 14 (layout as launchd prints it; values made up).
MACOS_LAUNCHCTL_PRINT = """system/io.minicluster.exporter = {
\tactive count = 1
\tpath = /Library/LaunchDaemons/io.minicluster.exporter.plist
\ttype = LaunchDaemon
\tstate = running

\tprogram = /opt/minicluster/venv/bin/python
\targuments = {
\t\t/opt/minicluster/venv/bin/python
\t\t-m
\t\texporters
\t}

\tworking directory = /opt/minicluster
\tstdout path = /opt/minicluster/logs/exporter.out.log
\tstderr path = /opt/minicluster/logs/exporter.err.log
\tdefault environment = {
\t\tPATH => /usr/bin:/bin:/usr/sbin:/sbin
\t}

\tenvironment = {
\t\tPYTHONUNBUFFERED => 1
\t\tXPC_SERVICE_NAME => io.minicluster.exporter
\t}

\tdomain = system
\tusername = admin
\tminimum runtime = 10
\texit timeout = 5
\truns = 3
\tpid = 4242
\timmediate reason = speculative
\tforks = 0
\texecs = 1
\tlast exit code = (never exited)

\tspawn type = daemon (3)
\tproperties = keepalive | runatload | inferred program
}
""".splitlines()

MACOS_IFCONFIG_EN0 = """en0: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500
\toptions=50b<RXCSUM,TXCSUM,VLAN_HWTAGGING,AV,CHANNEL_IO>
\tether 3c:a6:f6:12:34:56
\tinet6 fe80::1c2b:3d4e:5f60:7182%en0 prefixlen 64 secured scopeid 0xe
\tinet 192.168.1.20 netmask 0xffffff00 broadcast 192.168.1.255
\tnd6 options=201<PERFORMNUD,DAD>
\tmedia: autoselect (1000baseT <full-duplex>)
\tstatus: active
"""
LINUX_IP_ADDR_EN0 = (
    "2: en0    inet 10.77.5.3/24 scope global en0\\       valid_lft forever preferred_lft forever\n"
    "2: en0    inet6 fe80::4c1e:2bff:fe3a:11/64 scope link \\       valid_lft forever\n"
)
MACOS_DF_PK = """Filesystem     1024-blocks      Used Available Capacity  Mounted on
/dev/disk3s5     482797652 312003420 160219468    67%    /System/Volumes/Data
"""
LINUX_DF_PK = """Filesystem     1024-blocks     Used Available Capacity Mounted on
/dev/vda         264091588 25000000  81600000      24% /
"""


def test_launchctl_print_of_a_running_job():
    job = parse_launchctl_print("io.minicluster.exporter", MACOS_LAUNCHCTL_PRINT)
    assert job == LaunchdJob(
        "io.minicluster.exporter",
        running=True,
        pid=4242,
        path="/Library/LaunchDaemons/io.minicluster.exporter.plist",
    )


def test_launchctl_print_of_a_stopped_job_and_of_none():
    stopped = [line for line in MACOS_LAUNCHCTL_PRINT if "pid =" not in line]
    stopped = [line.replace("state = running", "state = not running") for line in stopped]
    job = parse_launchctl_print("io.minicluster.exporter", stopped)
    assert job is not None and not job.running and job.pid is None
    assert parse_launchctl_print("io.minicluster.exporter", []) is None


RUNNING = LaunchdJob("x", running=True, pid=1, path="/Library/LaunchDaemons/x.plist")
STOPPED = LaunchdJob("x", running=False, pid=None, path="/Library/LaunchDaemons/x.plist")


@pytest.mark.parametrize(
    ("job", "change", "action", "verbs"),
    [
        (None, Change(), "start (bootstrap)", ["bootstrap"]),
        (RUNNING, Change(plist=True, restart=True), "restart with the new plist (bootout, "
         "bootstrap)", ["bootout", "bootstrap"]),
        (RUNNING, Change(restart=True, reload=True), "restart (kickstart -k)", ["kickstart -k"]),
        (RUNNING, Change(reload=True), "reload (SIGHUP)", ["kill SIGHUP"]),
        (STOPPED, Change(reload=True), "start (kickstart)", ["kickstart system"]),
        (RUNNING, Change(), "", []),
    ],
)  # fmt: skip
def test_what_launchd_is_told_for_each_change(job, change, action, verbs):
    got_action, commands = service_commands("x", job, change)
    assert got_action == action
    assert len(commands) == len(verbs)
    for command, verb in zip(commands, verbs, strict=True):
        assert command.startswith(f"launchctl {verb}")


def test_homebrew_formula_of_a_pinned_python():
    assert homebrew_formula("/opt/homebrew/bin/python3.12") == "python@3.12"
    assert homebrew_formula("/usr/local/bin/python3.11") == "python@3.11"
    assert homebrew_formula("/usr/bin/python3") is None


def test_homebrew_installs_the_services_configured_at_its_paths(tmp_path):
    def config(grafana: str):
        brew = "/opt/homebrew/bin/"
        binaries = {"prometheus": brew + "prometheus", "alertmanager": brew + "alertmanager"}
        sections = {name: {"binary": path} for name, path in binaries.items()}
        return local_profile(tmp_path, grafana={"binary": grafana}, **sections)

    homebrew = config("/opt/homebrew/bin/grafana")
    assert homebrew_services(homebrew, "/opt/homebrew") == ["prometheus", "alertmanager", "grafana"]
    # An Intel Mac's Homebrew lives in /usr/local: these binaries are not its.
    assert homebrew_services(homebrew, "/usr/local") == []
    own_grafana = config("/Applications/Grafana/bin/grafana")
    assert homebrew_services(own_grafana, "/opt/homebrew") == ["prometheus", "alertmanager"]


def test_only_the_exporters_config_sections_restart_it(tmp_path):
    base = local_profile(tmp_path)
    assert exporter_inputs(base) == exporter_inputs(
        local_profile(tmp_path, prometheus={"scrape_interval_seconds": 7})
    )
    assert exporter_inputs(base) != exporter_inputs(
        local_profile(tmp_path, exporter={"collector_timeout_seconds": 1.5})
    )


def test_launchd_environment_command_uses_only_the_plist_environment():
    plist = {
        "ProgramArguments": ["/opt/minicluster/venv/bin/python", "-m", "minicluster.exporter"],
        "WorkingDirectory": "/opt/minicluster",
        "EnvironmentVariables": {"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"},
    }
    command = launchd_environment_command(plist, "import minicluster.exporter")
    assert command == (
        "cd /opt/minicluster && env -i PATH=/usr/bin:/bin PYTHONUNBUFFERED=1 "
        "/opt/minicluster/venv/bin/python -c 'import minicluster.exporter'"
    )


def test_stack_diff_names_the_services_it_touches():
    stack = Stack(
        files={"prometheus/prometheus.yml": b"a", "alertmanager/alertmanager.yml": b"b"},
        plists={},
        secrets={},
    )
    live = stack.digests() | {"prometheus/rules/old.yml": "0" * 64}
    assert stack.changed_files(stack.digests()) == []
    assert stack.changed_files(live) == ["prometheus/rules/old.yml"]  # to be removed
    assert services_touched(["prometheus/rules/old.yml"]) == {"prometheus"}
    assert services_touched(["grafana/grafana.ini", "alertmanager/alertmanager.yml"]) == {
        "grafana",
        "alertmanager",
    }


def test_checks_use_the_tools_beside_the_configured_binaries(tmp_path):
    config = local_profile(tmp_path, prometheus={"binary": "/opt/homebrew/bin/prometheus"},
                           alertmanager={"binary": "/opt/homebrew/bin/alertmanager"})  # fmt: skip
    stack = Stack({"prometheus/rules/node.yml": b"groups: []\n"}, {}, {})
    commands = validate_commands(config, stack, "/opt/minicluster/staging")
    assert commands == [
        "/opt/homebrew/bin/promtool check config "
        "/opt/minicluster/staging/prometheus/prometheus.yml",
        "/opt/homebrew/bin/promtool check rules /opt/minicluster/staging/prometheus/rules/node.yml",
        "/opt/homebrew/bin/amtool check-config "
        "/opt/minicluster/staging/alertmanager/alertmanager.yml",
    ]


def test_a_dashboard_without_uid_or_json_is_refused_before_upload():
    with pytest.raises(StackError, match="needs a fixed uid"):
        _check_dashboards({"grafana/dashboards/a.json": b'{"title": "A"}'})
    with pytest.raises(StackError, match="not valid JSON"):
        _check_dashboards({"grafana/dashboards/a.json": b"{"})


def test_configured_key_and_known_hosts_mean_strict_checking(tmp_path):
    node = (
        local_profile(tmp_path)
        .nodes[0]
        .model_copy(update={"ssh_key": "/keys/id", "ssh_known_hosts_file": "/keys/known"})
    )
    data = host_data(node)
    assert data["ssh_key"] == "/keys/id" and data["ssh_look_for_keys"] is False
    assert data["ssh_known_hosts_file"] == "/keys/known"
    assert data["ssh_strict_host_key_checking"] == "yes"
    assert "ssh_key" not in host_data(local_profile(tmp_path).nodes[0])


def test_interface_addresses_on_macos_and_linux():
    assert interface_addresses(MACOS_IFCONFIG_EN0) == ["fe80::1c2b:3d4e:5f60:7182", "192.168.1.20"]
    assert interface_addresses(LINUX_IP_ADDR_EN0) == ["10.77.5.3", "fe80::4c1e:2bff:fe3a:11"]


def test_free_bytes_from_df_on_macos_and_linux():
    assert free_bytes(MACOS_DF_PK) == 160219468 * 1024
    assert free_bytes(LINUX_DF_PK) == 81600000 * 1024


def test_clock_command_gnu_date_and_the_bsd_date_fallback(tmp_path):
    now = time.time()
    assert abs(parse_clock(subprocess.run(["sh", "-c", CLOCK_COMMAND], capture_output=True,
                                          text=True, check=True).stdout) - now) < 5  # fmt: skip
    # macOS date has no %N and prints it literally: the command must fall back to perl.
    bsd_date = tmp_path / "date"
    bsd_date.write_text('#!/bin/sh\necho "$(/bin/date +%s).N"\n')
    bsd_date.chmod(0o755)
    out = subprocess.run(["sh", "-c", CLOCK_COMMAND], capture_output=True, text=True,
                         check=True, env={"PATH": f"{tmp_path}:/usr/bin:/bin"}).stdout  # fmt: skip
    assert "." in out and abs(parse_clock(out) - time.time()) < 5
    assert len(out.strip().split(".")[1]) == 6  # microseconds from Time::HiRes


def run_probe(*args: str) -> dict:
    command = remote_command(sys.executable, *args)
    return json.loads(subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                                     check=True, env={"PATH": "/usr/bin:/bin"}).stdout)  # fmt: skip


def test_probes_see_open_refused_free_and_in_use_ports():
    port = free_port()
    assert run_probe("connect", "127.0.0.1", str(port))["result"] == "refused"
    assert run_probe("bind", "127.0.0.1", str(port))["result"] == "free"
    server = http.server.HTTPServer(("127.0.0.1", port), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert run_probe("connect", "127.0.0.1", str(port))["result"] == "open"
        assert run_probe("bind", "127.0.0.1", str(port))["result"] == "in use"
        assert run_probe("http", f"http://127.0.0.1:{port}/")["status"] == 200
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    missing = run_probe("http", f"http://127.0.0.1:{closed}/metrics", "--wait", "0.3")
    assert missing["status"] is None and "refused" in missing["error"].lower()


def test_unchanged_sources_build_a_byte_identical_wheel(tmp_path):
    first = build_wheel(tmp_path / "one")
    second = build_wheel(tmp_path / "two")
    assert first.sha256 == second.sha256
    assert first.name.startswith("minicluster-") and first.name.endswith("-py3-none-any.whl")
    assert Path(first.path).stat().st_size > 10_000
