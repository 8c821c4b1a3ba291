"""What deploy installs per node when the cluster grows or shrinks, without any host: a
worker's config.yaml lists the master and itself only, a node that left is named with the
command that cleans it, and `undeploy --node` refuses a name the config does not have."""

from __future__ import annotations

from pathlib import Path

import yaml

from minicluster.cli import main
from minicluster.core.config import parse_config
from minicluster.deploy.plan import departed_notes, exporter_inputs, node_view

REPO = Path(__file__).resolve().parents[2]


def config_of(*names: str):
    data = yaml.safe_load((REPO / "config.example.yaml").read_text())
    template = data["nodes"][1]
    data["nodes"] = [
        {**template, "name": name, "address": f"10.9.0.{i + 2}",
         "role": "master" if i == 0 else "worker"}
        for i, name in enumerate(names)
    ]  # fmt: skip
    return parse_config(data, "<test>")


def test_a_worker_installs_the_same_config_however_many_others_join():
    pair, four = config_of("a", "b"), config_of("a", "b", "c", "d")
    worker_pair, worker_four = node_view(pair, pair.node("b")), node_view(four, four.node("b"))
    assert worker_pair.to_yaml() == worker_four.to_yaml()
    assert exporter_inputs(worker_pair) == exporter_inputs(worker_four)  # no restart
    assert [node.name for node in worker_four.nodes] == ["a", "b"]
    # The master sees the whole cluster: its Prometheus and exporter follow every change.
    assert node_view(four, four.master) is four
    assert exporter_inputs(node_view(pair, pair.master)) != exporter_inputs(four)
    assert [node.name for node in node_view(four, four.node("d")).nodes] == ["a", "d"]


def test_a_node_that_left_is_named_with_its_clean_up_command():
    installed = config_of("a", "b", "c").to_yaml()
    (note,) = departed_notes(installed, config_of("a", "b"))
    assert note.startswith("c left config.yaml: Prometheus no longer scrapes it")
    assert "`make undeploy NODE=c CONFIG=<a config that still lists it>`" in note
    assert departed_notes(installed, config_of("a", "b", "c", "d")) == []
    assert departed_notes("", config_of("a", "b")) == []  # first deploy: nothing installed
    assert departed_notes("not: [a, config", config_of("a", "b")) == []


def test_undeploy_of_an_unknown_node_is_one_line_and_exit_2(tmp_path: Path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(config_of("a", "b").to_yaml())
    code = main(["undeploy", "--config", str(path), "--node", "z"])  # before any connection
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err == f"{path}: --node: no node named 'z' (config has: a, b)\n"
