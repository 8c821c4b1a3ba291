"""More Minis are more entries under `nodes:`: nothing in the package names the example's
two nodes, and what it renders for four differently named nodes covers all four.

Names from the example config are allowed only in config.example.yaml and the local profile
(minicluster/core/profiles.py). The files committed under prometheus/, grafana/ and launchd/
are renderings of the example config, so they carry its names by design and are not
searched; what the renderers produce is checked instead, for a four-node config.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from minicluster.core.config import parse_config
from minicluster.render.bundle import bundle_files

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("minicluster", "exporters", "trainer", "deploy")
ALLOWED = {Path("minicluster/core/profiles.py")}
EXAMPLE_NAMES = re.compile(r"mini[-_](red|yellow)", re.IGNORECASE)
FOUR = ("alpha", "bravo", "charlie", "delta")


def package_files() -> list[Path]:
    files = []
    for folder in PACKAGE_DIRS:
        for path in sorted((REPO / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append(path)
    return files


def test_the_package_never_names_the_example_nodes():
    found = []
    for path in package_files():
        if path.relative_to(REPO) in ALLOWED:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if EXAMPLE_NAMES.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert len(package_files()) > 50  # the walk saw the package, not an empty folder
    assert found == [], "\n".join(found)


def four_node_config():
    data = yaml.safe_load((REPO / "config.example.yaml").read_text())
    template = data["nodes"][1]
    data["nodes"] = [
        {**template, "name": name, "address": f"10.9.0.{index + 2}", "role": role}
        for index, (name, role) in enumerate(
            zip(FOUR, ("master", "worker", "worker", "worker"), strict=True)
        )
    ]
    return parse_config(data, "<four nodes>")


def test_four_nodes_render_four_targets_and_no_example_name():
    config = four_node_config()
    files = bundle_files(config)
    leaked = [name for name, data in files.items() if EXAMPLE_NAMES.search(data.decode())]
    assert leaked == []
    prometheus = yaml.safe_load(files["prometheus/prometheus.yml"])
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    node_targets = {
        (group["labels"]["node"], target)
        for group in jobs["node"]["static_configs"]
        for target in group["targets"]
    }
    assert node_targets == {(name, f"10.9.0.{i + 2}:9100") for i, name in enumerate(FOUR)}
    sd_urls = [sd["url"] for sd in jobs["trainer"]["http_sd_configs"]]
    assert sd_urls == [f"https://10.9.0.{i + 2}:9100/sd" for i in range(4)]  # TLS by default
    # One exporter LaunchDaemon per node; the monitoring services on the master only.
    plists = sorted(name for name in files if name.endswith(".plist"))
    exporters = [name for name in plists if "exporter" in name]
    assert [name.split("/")[1] for name in exporters] == list(FOUR)
    assert {name.split("/")[1] for name in plists if name not in exporters} == {"alpha"}
