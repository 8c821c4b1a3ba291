"""cluster.name becomes Prometheus' external label `cluster`: Prometheus 3 expands `$VAR`
and `${VAR}` in external label values and 2.42 does not, so the name keeps to characters
that mean the same in both; a bad one is one line naming the file and the key."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from minicluster.core.config import ConfigError, load_config
from minicluster.render.prometheus_config import render_prometheus_config
from tests.support import EXAMPLE_CONFIG


def _write(tmp_path, name: str):
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["cluster"]["name"] = name
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("name", ["minis", "lab-2", "Studio_A", "rack.1", "x" * 63])
def test_plain_names_land_in_prometheus_yml_unchanged(tmp_path, name):
    config = load_config(_write(tmp_path, name))
    rendered = yaml.safe_load(render_prometheus_config(config))
    assert rendered["global"]["external_labels"] == {"cluster": name}


@pytest.mark.parametrize(
    "name", ["$HOME", "lab-${USER}", "a$b", "two words", "-lab", "", "x" * 64, "mini\nred"]
)
def test_names_that_3x_would_expand_or_that_are_not_plain_are_refused(tmp_path, name):
    path = _write(tmp_path, name)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: cluster.name: {name!r}: use letters, digits")
    assert "3.x expands '$'" in message
    assert "\n" not in message


def test_config_check_prints_one_line_and_fails(tmp_path):
    path = _write(tmp_path, "$CLUSTER")
    result = subprocess.run(
        [sys.executable, "-m", "minicluster", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{path}: cluster.name: '$CLUSTER'" in lines[0]


def test_no_rendered_prometheus_yml_of_a_valid_config_holds_a_dollar(tmp_path):
    # Node names, roles, addresses and ports, the other values in prometheus.yml, are
    # already held to DNS labels, IPs and host names.
    config = load_config(_write(tmp_path, "minis"))
    assert "$" not in render_prometheus_config(config)
