"""A stranger on the simulated LAN: a network namespace on the hosts' bridge, and nothing else.

It gets an address in the hosts' subnet (.200), so it reaches every port a host listens on,
as any machine plugged into the same switch would. It has no ssh key, no certificate and no
password: what it gets from a deployed stack is what the LAN gets. It is not one of the
cluster's hosts (not in `lan.namespaces`, so link shaping and teardown of the hosts leave
it alone); `stranger_on` removes it when its block ends.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from tests.hosts.network import HOST_INTERFACE, Lan, ip

# Far above the hosts' .2, .3, ...: clusters of any size keep their addresses.
STRANGER_INDEX = 200


@dataclass(frozen=True)
class Stranger:
    netns: str
    address: str

    def run(self, argv: list[str], *, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run `argv` in the stranger's network namespace (the control machine's files)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@contextlib.contextmanager
def stranger_on(lan: Lan) -> Iterator[Stranger]:
    """A namespace wired to `lan`'s bridge, with an address in its subnet; removed after."""
    netns = f"stranger-{lan.token}"
    veth = f"vs{lan.token}"[:15]
    address = str(lan.subnet.network_address + STRANGER_INDEX)
    ip("netns", "add", netns)
    try:
        ip("link", "add", veth, "type", "veth", "peer", "name", HOST_INTERFACE, "netns", netns)
        ip("link", "set", veth, "master", lan.bridge, "up")
        ip("-n", netns, "addr", "add", f"{address}/{lan.subnet.prefixlen}", "dev", HOST_INTERFACE)
        ip("-n", netns, "link", "set", HOST_INTERFACE, "up")
        ip("-n", netns, "link", "set", "lo", "up")
        yield Stranger(netns, address)
    finally:
        # The pair first: a deleted namespace drops its end only later, in the background.
        ip("link", "delete", veth, check=False)
        ip("netns", "delete", netns, check=False)
