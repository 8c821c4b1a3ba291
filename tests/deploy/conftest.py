"""The deployed pair: the harness's two Minis with `minicluster deploy` run once.

Tests declare the state they need as fixtures, so they hold in any order and alone:
`deployed` is the pair with the stack deployed from the harness config (deploying again
first when an earlier test changed the config or removed the stack); a test that changes
the config takes `deployed_config_changed`, one that removes the stack takes
`deployed_then_removed`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from minicluster.deploy.wheel import build_wheel
from tests.hosts.cluster import SimulatedCluster
from tests.hosts.fixtures import two_minis  # noqa: F401  (the session-wide pair)

# The console script installed beside this interpreter (the project's venv).
CLI = str(Path(sys.executable).parent / "minicluster")
DEPLOY_TIMEOUT = 600


@dataclass
class Run:
    returncode: int
    output: str
    seconds: float


def minicluster(*args: str, timeout: float = DEPLOY_TIMEOUT, columns: int = 250) -> Run:
    """The installed console script, as a user runs it (wide output: rich never wraps)."""
    started = time.monotonic()
    result = subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": str(columns)},
    )
    return Run(result.returncode, result.stdout + result.stderr, time.monotonic() - started)


def deploy(cluster: SimulatedCluster, wheel: Path, *args: str, config: Path | None = None) -> Run:
    """`minicluster deploy` of `wheel` to the pair.

    The wheel is built once up front (by deploy's own builder) so that files other people
    edit in this checkout while the tests run cannot change it between two deploys.
    """
    path = config or cluster.config_path
    return minicluster("deploy", "--config", str(path), "--wheel", str(wheel), *args)


@dataclass
class Deployed:
    cluster: SimulatedCluster
    wheel: Path
    first: Run  # the output of the first deploy
    stale: bool = False  # the config changed or the stack was removed since a deploy

    def deploy(self, *args: str, config: Path | None = None) -> Run:
        return deploy(self.cluster, self.wheel, *args, config=config)


@pytest.fixture(scope="session")
def first_deploy(two_minis: SimulatedCluster, tmp_path_factory) -> Deployed:  # noqa: F811
    wheel = build_wheel(tmp_path_factory.mktemp("wheel")).path
    first = deploy(two_minis, wheel)
    assert first.returncode == 0, first.output
    return Deployed(two_minis, wheel, first)


@pytest.fixture
def deployed(first_deploy: Deployed) -> Deployed:
    """The pair as the harness config deploys it, whatever ran before."""
    if first_deploy.stale:
        first_deploy.cluster.write_config()
        again = first_deploy.deploy()
        assert again.returncode == 0, again.output
        first_deploy.stale = False
    return first_deploy


@pytest.fixture
def deployed_config_changed(deployed: Deployed) -> Iterator[Deployed]:
    """For a test that deploys another config: the next test gets the harness config back."""
    yield deployed
    deployed.cluster.write_config()
    deployed.stale = True


@pytest.fixture
def deployed_then_removed(deployed: Deployed) -> Iterator[Deployed]:
    """For a test that undeploys: the next test that needs the stack deploys it again."""
    yield deployed
    deployed.stale = True
