"""The newsyslog.d file deploy installs: one newsyslog.conf(5) line per service log."""

from __future__ import annotations

import re

from minicluster.core import layout
from minicluster.core.config import parse_config
from minicluster.render import launchd
from minicluster.render.newsyslog import newsyslog_conf, service_logs

CONFIG = parse_config(
    {
        "nodes": [
            {"name": "mini-a", "address": "10.0.0.1", "role": "master", "ssh_user": "ops"},
            {
                "name": "mini-b",
                "address": "10.0.0.2",
                "role": "worker",
                "ssh_user": "ops",
                "install_dir": "/opt/mc#2",
            },
        ]
    },
    "config.yaml",
)

# logfilename  owner:group  mode  count  size(KB)  when  flags
LINE = re.compile(r"^(\S+)\t(\w+):(\w+)\t([0-7]{3})\t(\d+)\t(\d+|\*)\t(\*|\S+)\t([A-Z]+)$")


def entries(text: str) -> list[tuple]:
    rows = [line for line in text.splitlines() if line and not line.startswith("#")]
    matches = [LINE.match(row) for row in rows]
    assert all(matches), rows
    return [m.groups() for m in matches]


def test_every_service_log_of_the_master_is_rotated_at_10_mb_times_5():
    master = CONFIG.master
    rows = entries(newsyslog_conf(CONFIG, master))
    plists = [launchd.exporter_plist(CONFIG, master, layout.config_path(master))]
    plists += launchd.master_plists(CONFIG).values()
    expected = {p[k] for p in plists for k in ("StandardOutPath", "StandardErrorPath")}
    assert {row[0] for row in rows} == expected
    assert len(rows) == 8  # exporter, prometheus, alertmanager, grafana: out and err
    for _, owner, group, mode, count, size, when, flags in rows:
        assert (owner, group, mode) == ("ops", "staff", "640")
        assert (int(count), int(size), when) == (5, 10240, "*")
        assert set(flags) == {"N", "J"}  # signal nothing, bzip2 archives
    assert all(row[0].startswith(layout.log_dir(master) + "/") for row in rows)


def test_a_worker_rotates_its_exporter_logs_and_escapes_a_hash():
    worker = CONFIG.node("mini-b")
    rows = entries(newsyslog_conf(CONFIG, worker))
    assert [row[0] for row in rows] == [p.replace("#", "\\#") for p in service_logs(CONFIG, worker)]
    assert len(rows) == 2 and all(row[0].startswith("/opt/mc\\#2/") for row in rows)
