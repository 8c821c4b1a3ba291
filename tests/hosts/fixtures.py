"""The pytest fixture for the simulated pair (import it into a conftest.py to use it), a
stranger on its LAN, and `simulated_minis` for a cluster of any size."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.hosts.cluster import HOST_NAMES, SimulatedCluster, start_cluster
from tests.hosts.stranger import Stranger, stranger_on

NEEDED_TOOLS = {
    "ip": "apt-get install iproute2",
    "nsenter": "apt-get install util-linux",
    "unshare": "apt-get install util-linux",
    "sshd": "apt-get install openssh-server",
    "ssh": "apt-get install openssh-client",
    "ssh-keygen": "apt-get install openssh-client",
    "prometheus": "apt-get install prometheus",
    "promtool": "apt-get install prometheus",
    "prometheus-alertmanager": "apt-get install prometheus-alertmanager",
    "amtool": "apt-get install prometheus-alertmanager",
}


def check_prerequisites() -> None:
    """Fail (never skip) with how to get whatever the harness needs."""
    if os.geteuid() != 0:
        pytest.fail("the simulated hosts need root (network and mount namespaces)")
    for tool, how in NEEDED_TOOLS.items():
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            pytest.fail(f"{tool} is not installed; {how}")


@contextlib.contextmanager
def simulated_minis(
    root: Path, names: Sequence[str], pin_cpus: bool = True
) -> Iterator[SimulatedCluster]:
    """Hosts called `names` (the first is the master), reachable over ssh; torn down after."""
    check_prerequisites()
    cluster = start_cluster(root, names, pin_cpus=pin_cpus)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def two_minis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedCluster]:
    """mini-red (master) and mini-yellow (worker), reachable over ssh; torn down at the end."""
    with simulated_minis(tmp_path_factory.mktemp("minis"), HOST_NAMES, pin_cpus=False) as pair:
        yield pair


@pytest.fixture
def stranger(two_minis: SimulatedCluster) -> Iterator[Stranger]:
    """A third namespace on the pair's bridge holding no key, certificate or password."""
    with stranger_on(two_minis.lan) as outsider:
        yield outsider
