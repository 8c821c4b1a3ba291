"""`--prometheus` as status, top and report share it: an explicit URL wins, else the master's."""

from __future__ import annotations

import argparse

import pytest
import yaml

from minicluster.commands.args import (
    add_config_arguments,
    add_prometheus_argument,
    config_beside_prometheus,
    prometheus_from_args,
)
from minicluster.core.config import ConfigError
from minicluster.core.profiles import local_profile


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    add_prometheus_argument(parser)
    return parser.parse_args(argv)


def test_an_explicit_url_needs_no_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no config.yaml here
    args = parse("--prometheus", "http://127.0.0.1:9999/")
    config = config_beside_prometheus(args)
    assert config is None
    assert prometheus_from_args(args, config) == "http://127.0.0.1:9999/"


def test_a_named_config_that_is_missing_is_still_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = parse("--config", str(tmp_path / "nope.yaml"), "--prometheus", "http://127.0.0.1:1")
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        config_beside_prometheus(args)


def test_without_a_url_and_config_it_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"config\.yaml"):
        config_beside_prometheus(parse())


def test_the_default_is_the_masters_prometheus():
    args = parse("--local")
    config = config_beside_prometheus(args)
    expected = f"http://127.0.0.1:{local_profile().prometheus.port}"
    assert prometheus_from_args(args, config) == expected


def test_a_tls_cluster_without_its_pki_files_is_one_line_saying_to_deploy(tmp_path, capsys):
    from minicluster.cli import main

    data = local_profile(tmp_path / "state").model_dump(mode="json")
    data["security"] = {"tls": True, "pki_dir": str(tmp_path / "pki")}
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(data))
    runs = ["--runs-dir", str(tmp_path / "runs")]
    for argv in (["status"], ["top", "--once"], ["report", "job-1", *runs]):
        assert main([*argv, "--config", str(config_file)]) == 2
        err = capsys.readouterr().err
        root = tmp_path / "pki" / "local"
        assert err == (
            f"config: security.pki_dir: {root}/ca.crt is missing: run `make deploy`, which "
            f"creates the cluster's certificates and web password in {root}\n"
        )
