"""`minicluster undeploy`: services booted out, files removed, data kept unless --purge."""

from __future__ import annotations

import pytest

from minicluster.render.launchd import LABEL_PREFIX, exporter_label
from tests.deploy.conftest import Deployed, minicluster

pytestmark = pytest.mark.e2e


def test_undeploy_keeps_data_and_purge_removes_everything(deployed_then_removed: Deployed):
    deployed = deployed_then_removed
    cluster = deployed.cluster
    config = str(cluster.config_path)
    pids = [cluster.red.service_pid(LABEL_PREFIX + "prometheus"),
            cluster.yellow.service_pid(exporter_label())]  # fmt: skip
    assert all(pids)

    run = minicluster("undeploy", "--config", config)

    assert run.returncode == 0, run.output
    assert "data and logs kept" in run.output
    for host in cluster.hosts.values():
        assert list(host.path("/Library/LaunchDaemons").glob("*.plist")) == []
        assert host.launchd_job(exporter_label()) is None
        assert not host.path("/opt/minicluster/venv").exists()
        assert not host.path("/opt/minicluster/config.yaml").exists()
        assert host.path("/opt/minicluster/logs/exporter.err.log").exists()
    assert host.run(["launchctl", "print", f"system/{exporter_label()}"], check=False).returncode
    assert cluster.red.path("/opt/minicluster/data/prometheus").is_dir()  # the TSDB stays
    assert not cluster.red.path("/opt/minicluster/stack").exists()
    for pid in pids:  # the processes are gone, not only forgotten
        assert not cluster.red.alive(pid)

    purge = minicluster("undeploy", "--purge", "--config", config)

    assert purge.returncode == 0, purge.output
    for host in cluster.hosts.values():
        assert not host.path("/opt/minicluster").exists()
