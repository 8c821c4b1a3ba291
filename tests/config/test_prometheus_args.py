"""`--prometheus` as status, top and report share it: an explicit URL wins, else the master's."""

from __future__ import annotations

import argparse

import pytest

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
