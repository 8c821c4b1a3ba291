"""Placeholder addresses (the documentation ranges config.example.yaml ships with) are
refused with one line naming the node to edit, before any connection.

The end-to-end test runs every command that connects to the nodes inside a network
namespace whose only way out is a veth pair to a second namespace, where a packet socket
records every frame that arrives: an ssh attempt to a placeholder would show there as an
ARP request or a TCP SYN. A control connection to the recorder's own address proves the
recording sees such attempts. Nothing leaves the two namespaces, and nothing is sent to a
placeholder address by the test itself.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from minicluster.core.config import (
    ConfigError,
    load_config,
    parse_config,
    require_real_addresses,
)
from tests.support import require_tool, wait_until

REPO = Path(__file__).parents[2]
EXAMPLE = REPO / "config.example.yaml"


def _example(**addresses: str) -> dict:
    data = yaml.safe_load(EXAMPLE.read_text())
    for node in data["nodes"]:
        node["address"] = addresses.get(node["name"], node["address"])
    return data


@pytest.mark.parametrize(
    "address,network",
    [
        ("192.0.2.10", "192.0.2.0/24"),
        ("198.51.100.7", "198.51.100.0/24"),
        ("203.0.113.250", "203.0.113.0/24"),
        ("2001:db8::5", "2001:db8::/32"),
    ],
)
def test_a_placeholder_names_the_node_to_edit(address, network):
    config = parse_config(_example(**{"mini-yellow": address, "mini-red": "10.0.0.1"}), "x")
    with pytest.raises(ConfigError) as raised:
        require_real_addresses(config, "config.yaml")
    assert str(raised.value) == (
        f"config.yaml: nodes[1].address: {address} is a placeholder (documentation range "
        f"{network}): edit node mini-yellow to its real address (on that Mini: "
        "ipconfig getifaddr en0)"
    )


@pytest.mark.parametrize("address", ["10.0.0.2", "127.0.0.1", "192.0.3.1", "mini-red.local"])
def test_real_addresses_and_host_names_pass(address):
    config = parse_config(_example(**{"mini-red": address, "mini-yellow": "10.0.0.9"}), "x")
    require_real_addresses(config, "config.yaml")


def test_the_shipped_example_is_refused_at_its_first_node():
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.address: 192\.0\.2\.10 is a placeholder"):
        require_real_addresses(load_config(EXAMPLE), str(EXAMPLE))


# --- no connection is attempted ------------------------------------------------------------

RECORDER = r"""
import json, socket, sys
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
sock.bind((sys.argv[1], 0))
print(json.dumps({"ready": True}), flush=True)
while True:
    frame, address = sock.recvfrom(65535)
    if address[2] == socket.PACKET_OUTGOING:
        continue
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype == 0x0800:
        ihl = (frame[14] & 0x0F) * 4
        proto = frame[23]
        ports = frame[14 + ihl : 14 + ihl + 4]
        seen = {"kind": {1: "icmp", 6: "tcp", 17: "udp"}.get(proto, str(proto)),
                "dst": socket.inet_ntoa(frame[30:34]),
                "port": int.from_bytes(ports[2:4], "big") if proto in (6, 17) else None}
    elif ethertype == 0x0806:
        seen = {"kind": "arp", "dst": socket.inet_ntoa(frame[38:42]), "port": None}
    else:
        seen = {"kind": hex(ethertype), "dst": None, "port": None}
    print(json.dumps(seen), flush=True)
"""
CLIENT_IP, RECORDER_IP = "198.18.0.1", "198.18.0.2"  # RFC 2544 test range, inside the pair


class Sealed:
    """Two namespaces joined by a veth pair: `client`, whose default route leads to
    `recorder`, and `recorder`, which records every frame arriving from the client."""

    def __init__(self) -> None:
        self.ip = require_tool("ip", "apt-get install iproute2")
        tag = f"mcph{os.getpid()}"
        self.client, self.recorder = f"{tag}c", f"{tag}r"
        self.frames: queue.Queue = queue.Queue()
        for ns in (self.client, self.recorder):
            self.run("netns", "add", ns)
            self.run("-n", ns, "link", "set", "lo", "up")
        # IPv6 off in the client: its neighbour discovery chatter is not a connection.
        self.exec(self.client, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1")
        self.exec(self.client, "sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1")
        self.run("link", "add", f"{tag}a", "type", "veth", "peer", "name", f"{tag}b")
        self.run("link", "set", f"{tag}a", "netns", self.client)
        self.run("link", "set", f"{tag}b", "netns", self.recorder)
        self.run("-n", self.client, "addr", "add", f"{CLIENT_IP}/24", "dev", f"{tag}a")
        self.run("-n", self.recorder, "addr", "add", f"{RECORDER_IP}/24", "dev", f"{tag}b")
        self.run("-n", self.client, "link", "set", f"{tag}a", "up")
        self.run("-n", self.recorder, "link", "set", f"{tag}b", "up")
        self.run("-n", self.client, "route", "add", "default", "via", RECORDER_IP)
        self.sniffer = subprocess.Popen(
            [self.ip, "netns", "exec", self.recorder, sys.executable, "-c", RECORDER, f"{tag}b"],
            stdout=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        assert self.frames.get(timeout=60) == {"ready": True}

    def _read(self) -> None:
        for line in self.sniffer.stdout:
            self.frames.put(json.loads(line))

    def run(self, *args: str) -> None:
        subprocess.run([self.ip, *args], check=True)

    def exec(self, ns: str, *argv: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([self.ip, "netns", "exec", ns, *argv], **kw)

    def drain(self) -> list[dict]:
        frames = []
        while not self.frames.empty():
            frames.append(self.frames.get_nowait())
        return frames

    def close(self) -> None:
        self.sniffer.terminate()
        self.sniffer.wait(10)
        for ns in (self.client, self.recorder):
            subprocess.run([self.ip, "netns", "del", ns], check=False)


@pytest.fixture
def sealed():
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root: run the e2e tier as root (CI does)")
    namespaces = Sealed()
    yield namespaces
    namespaces.close()


COMMANDS = [
    ["deploy"],
    ["deploy", "--dry-run"],
    ["undeploy"],
    ["doctor"],
    ["run-job", "--steps", "5"],
    ["logs", "20260101-000000-abcd"],
    ["stop", "20260101-000000-abcd"],
    ["bench", "--config", "config.yaml"],
    ["bench", "--allreduce", "--config", "config.yaml"],
]


@pytest.mark.e2e
def test_no_command_connects_to_a_placeholder(sealed, tmp_path):
    # The control: a connection attempt from the client is recorded.
    probe = (
        "import socket; s = socket.socket(); s.settimeout(5)\n"
        f"try: s.connect(({RECORDER_IP!r}, 22))\nexcept OSError: pass"
    )
    sealed.exec(sealed.client, sys.executable, "-c", probe, check=True)
    control = wait_until(
        lambda: [f for f in sealed.drain() if f["kind"] == "tcp"],
        "the control SYN at the recorder",
        timeout=30,
    )
    assert control[0] == {"kind": "tcp", "dst": RECORDER_IP, "port": 22}

    config = tmp_path / "config.yaml"
    config.write_text(EXAMPLE.read_text())  # the shipped example, placeholders and all
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "20260101-000000-abcd.json").write_text(
        # A record with PIDs on both nodes: without the check, stop would ssh to them.
        json.dumps({"job_id": "20260101-000000-abcd", "pids": {"mini-red": 42, "mini-yellow": 43}})
    )
    expected = (
        "config.yaml: nodes[0].address: 192.0.2.10 is a placeholder (documentation range "
        "192.0.2.0/24): edit node mini-red to its real address (on that Mini: "
        "ipconfig getifaddr en0)"
    )
    minicluster = str(Path(sys.executable).parent / "minicluster")
    for command in COMMANDS:
        done = sealed.exec(
            sealed.client,
            minicluster,
            *command,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )
        assert (done.returncode, done.stderr.splitlines()) == (2, [expected]), command
    # The product's own control: with a reachable-looking address, doctor's ssh attempt
    # is recorded, so the commands above would have shown up had they tried.
    reachable = _example(**{"mini-red": RECORDER_IP, "mini-yellow": "198.18.0.3"})
    config.write_text(yaml.safe_dump(reachable))
    doctor = sealed.exec(
        sealed.client, minicluster, "doctor", capture_output=True, text=True, cwd=tmp_path
    )
    seen: list[dict] = []
    wait_until(
        lambda: seen.extend(sealed.drain()) or any(f["port"] == 22 for f in seen),
        f"doctor's ssh SYN at the recorder (doctor said: {doctor.stdout} {doctor.stderr})",
        timeout=30,
    )

    # Also with a real first node: the placeholder further down is still caught first.
    second = _example(**{"mini-red": "127.0.0.1"})
    config.write_text(yaml.safe_dump(second))
    done = sealed.exec(
        sealed.client, minicluster, "doctor", capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 2 and "edit node mini-yellow" in done.stderr

    # Anything still in flight has reached the recorder by the time a second control does.
    sealed.exec(sealed.client, sys.executable, "-c", probe, check=True)
    frames: list[dict] = []

    def second_control() -> bool:
        frames.extend(sealed.drain())
        return any(f["kind"] == "tcp" and f["dst"] == RECORDER_IP for f in frames)

    wait_until(second_control, "the second control SYN", timeout=30)
    attempts = [f for f in frames if f["dst"] != RECORDER_IP]
    assert attempts == [], f"connection attempts left the client namespace: {attempts}"
