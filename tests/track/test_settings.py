"""Where a tracked rank's settings come from, in the documented order."""

from __future__ import annotations

from pathlib import Path

import yaml

from minicluster.core.profiles import local_profile
from minicluster.track import settings as s


def write_config(tmp_path: Path) -> Path:
    config = local_profile(state_dir=tmp_path / "state", trainer={"log_interval": 7})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return path


def test_plain_torchrun_without_config_gets_defaults(monkeypatch):
    monkeypatch.setattr(s, "DEFAULT_CONFIG", "/nonexistent/config.yaml")
    env = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "TORCHELASTIC_RUN_ID": "abc"}
    got = s.resolve(env)
    assert (got.job_id, got.rank, got.local_rank, got.world_size) == ("abc", 3, 1, 4)
    assert (got.metrics_address, got.metrics_port) == ("127.0.0.1", 9401)
    assert (got.run_dir, got.log_dir, got.log_interval, got.linger_seconds) == (None, None, 10, 0)
    assert got.node == s.hostname() and got.warnings == ()
    assert s.resolve({}).job_id.startswith("job-")


def test_run_job_environment_reads_the_node_from_the_config(tmp_path):
    config = write_config(tmp_path)
    env = {
        "MINICLUSTER_CONFIG": str(config),
        "MINICLUSTER_NODE": "mini-yellow",
        "MINICLUSTER_JOB_ID": "j9",
        "TORCHELASTIC_RUN_ID": "ignored",
        "LOCAL_RANK": "1",
    }
    got = s.resolve(env)
    data = yaml.safe_load(config.read_text())
    node = data["nodes"][1]
    assert got.job_id == "j9" and got.node == "mini-yellow"
    assert got.metrics_port == node["metrics_base_port"] + 1
    assert got.run_dir == Path(node["install_dir"]) / "run"
    assert got.log_dir == Path(node["install_dir"]) / "logs" / "j9"
    assert (got.log_interval, got.linger_seconds) == (7, data["trainer"]["linger_seconds"])


def test_environment_overrides_the_config(tmp_path):
    env = {
        "MINICLUSTER_CONFIG": str(write_config(tmp_path)),
        "MINICLUSTER_NODE": "mini-red",
        "MINICLUSTER_JOB_ID": "j9",
        "MINICLUSTER_METRICS_PORT": "12000",
        "MINICLUSTER_RUN_DIR": str(tmp_path / "r"),
        "MINICLUSTER_LOG_DIR": str(tmp_path / "l"),
        "MINICLUSTER_LOG_INTERVAL": "3",
        "MINICLUSTER_LINGER": "1.5",
        "LOCAL_RANK": "2",
    }
    got = s.resolve(env)
    assert got.metrics_port == 12002
    assert (got.run_dir, got.log_dir) == (tmp_path / "r", tmp_path / "l" / "j9")
    assert (got.log_interval, got.linger_seconds) == (3, 1.5)
    assert s.resolve({**env, "MINICLUSTER_METRICS_PORT": "off"}).metrics_port is None
    assert s.resolve({**env, "MINICLUSTER_METRICS_PORT": "0"}).metrics_port == 0


def test_bad_settings_are_warnings_never_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(s, "DEFAULT_CONFIG", "/nonexistent/config.yaml")
    got = s.resolve({"MINICLUSTER_CONFIG": str(tmp_path / "missing.yaml"), "LOCAL_RANK": "x"})
    assert got.run_dir is None and got.metrics_port == 9400
    assert len(got.warnings) == 2
    assert "missing.yaml" in got.warnings[1] and "metrics without discovery" in got.warnings[1]
    other = s.resolve({"MINICLUSTER_CONFIG": str(write_config(tmp_path)), "MINICLUSTER_NODE": "x"})
    assert other.run_dir is None and "no node named 'x'" in other.warnings[0]
    assert s.resolve({"MINICLUSTER_LINGER": "-1"}).linger_seconds == 0
