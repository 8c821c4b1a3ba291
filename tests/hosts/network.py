"""The simulated LAN: one network namespace per host, joined by a bridge in the root namespace.

    root namespace   bridge  10.77.<n>.1/24   (the control machine: deploy, doctor, tests)
    mini-red         en0     10.77.<n>.2/24   (veth into the bridge)
    mini-yellow      en0     10.77.<n>.3/24

The interface inside each namespace is called `en0`, the name a Mini's Ethernet has, so the
config's `interface: en0` is true on the simulated hosts too. `<n>` is picked under a lock
so parallel test runs never share a subnet; every name carries a unique token.
"""

from __future__ import annotations

import fcntl
import ipaddress
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

LOCK_FILE = Path("/run/lock/minicluster-test-hosts.lock")
SUBNET_PREFIX = "10.77"
HOST_INTERFACE = "en0"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _subnets_in_use() -> set[ipaddress.IPv4Network]:
    out = ip("-o", "-4", "addr", "show").stdout
    used = set()
    for line in out.splitlines():
        words = line.split()
        if "inet" in words:
            used.add(ipaddress.ip_interface(words[words.index("inet") + 1]).network)
    return used


@dataclass
class Lan:
    """A bridge plus one namespace per host; `delete()` removes all of it."""

    token: str
    bridge: str
    subnet: ipaddress.IPv4Network
    namespaces: dict[str, str] = field(default_factory=dict)  # host name -> netns name
    addresses: dict[str, str] = field(default_factory=dict)  # host name -> IPv4 address

    @property
    def gateway(self) -> str:
        """The bridge's address: where the control machine's traffic comes from."""
        return str(self.subnet.network_address + 1)

    def add_host(self, name: str) -> str:
        """Create `name`'s namespace, wired to the bridge; returns its address."""
        index = len(self.namespaces) + 2
        netns = f"{name}-{self.token}"
        veth = f"v{index}{self.token}"[:15]
        address = str(self.subnet.network_address + index)
        self.namespaces[name] = netns
        ip("netns", "add", netns)
        ip("link", "add", veth, "type", "veth", "peer", "name", HOST_INTERFACE, "netns", netns)
        ip("link", "set", veth, "master", self.bridge, "up")
        ip("-n", netns, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", HOST_INTERFACE)
        ip("-n", netns, "link", "set", HOST_INTERFACE, "up")
        ip("-n", netns, "link", "set", "lo", "up")
        self.addresses[name] = address
        return address

    def pids(self, name: str) -> list[int]:
        """Every process whose network namespace is `name`'s."""
        out = ip("netns", "pids", self.namespaces[name], check=False).stdout
        return [int(pid) for pid in out.split()]

    def delete(self) -> None:
        for netns in self.namespaces.values():
            ip("netns", "delete", netns, check=False)  # also removes the veth pair
        ip("link", "delete", self.bridge, check=False)


def create_lan(token: str) -> Lan:
    """A bridge on a 10.77.<n>.0/24 that no interface on this machine uses yet."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held until the bridge owns its subnet
        used = _subnets_in_use()
        candidates = [
            ipaddress.ip_network(f"{SUBNET_PREFIX}.{n}.0/24")
            for n in random.sample(range(1, 255), 254)
        ]
        subnet = next(net for net in candidates if net not in used)
        bridge = f"mcbr{token}"[:15]
        lan = Lan(token=token, bridge=bridge, subnet=subnet)
        ip("link", "add", bridge, "type", "bridge")
        ip("addr", "add", f"{lan.gateway}/{subnet.prefixlen}", "dev", bridge)
        ip("link", "set", bridge, "up")
    return lan
