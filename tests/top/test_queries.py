"""The query step on recorded Prometheus answers: fixtures/live_answers.json is what the live
stack (two exporters on Linux loopback, a 2-rank job) answered to every query of a frame;
the macOS figures Linux cannot publish (memory pressure, GPU, a link speed) and trouble
(an exporter down, a peer down, firing alerts) are added to it sample by sample."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from minicluster.core.profiles import local_profile
from minicluster.top import queries
from minicluster.top.queries import snapshot_from_answers

FIXTURES = Path(__file__).parent / "fixtures"
RULES = Path(__file__).parents[2] / "prometheus" / "rules"
URL = "http://127.0.0.1:9090"


@pytest.fixture
def recorded():
    data = json.loads((FIXTURES / "live_answers.json").read_text())
    config = local_profile()  # mini-red and mini-yellow on loopback, as in the recording
    return config, data["at"], data["answers"]


def _sample(value: float, **labels: str) -> dict:
    return {"metric": labels, "value": [1796137672.039, str(value)]}


def test_the_recording_answers_every_query_of_a_frame(recorded):
    _, _, answers = recorded
    assert set(answers) == set(queries.queries())


def test_every_recording_rule_top_reads_is_rendered():
    recorded_names = {
        rule["record"]
        for path in RULES.glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    assert set(queries.RECORDING_RULES) <= recorded_names
    used = set()
    for expr in queries.queries().values():
        used |= set(re.findall(r"[a-z_]+:[a-z_]+:[a-z_]+", expr))
    assert used <= recorded_names


def test_node_figures_from_the_recorded_answers(recorded):
    config, at, answers = recorded
    snapshot = snapshot_from_answers(URL, at, config, answers)
    red, yellow = snapshot.nodes
    assert (red.name, red.role, red.interface, red.up) == ("mini-red", "master", "lo", True)
    assert (yellow.name, yellow.role, yellow.up) == ("mini-yellow", "worker", True)
    assert yellow.cpu == pytest.approx(0.974951666666667)
    assert yellow.memory_used == pytest.approx(0.0649855215913755)
    # The training interface is the configured one (lo), not eth0, whose rate the rules
    # also record; loopback has no link speed but says what it is.
    lo_rx = next(
        float(s["value"][1])
        for s in answers["receive"]
        if s["metric"]["node"] == "mini-yellow" and s["metric"]["device"] == "lo"
    )
    assert lo_rx > 0 and yellow.receive == pytest.approx(lo_rx)
    assert (yellow.link_speed, yellow.link_kind, yellow.link_utilisation) == (
        None,
        "loopback",
        None,
    )
    assert yellow.peer_rtt == pytest.approx(0.0002467079998496047)
    assert yellow.peers_down == 0
    # Linux publishes neither macOS memory pressure nor GPU utilisation.
    assert (yellow.pressure, yellow.gpu) == (None, None)


def test_job_figures_from_the_recorded_answers(recorded):
    config, at, answers = recorded
    snapshot = snapshot_from_answers(URL, at, config, answers)
    (job,) = snapshot.jobs
    assert job.job_id == "live-4339"
    r0, r1 = job.ranks
    assert (r0.rank, r0.node, r0.up, r0.steps, r0.target) == (0, "mini-red", True, 53, 1e6)
    assert (r1.rank, r1.node, r1.steps) == (1, "mini-yellow", 54)
    assert (r0.lag, r1.lag) == (1, 0)
    assert job.slowest is r0 and job.progress == pytest.approx(53e-6)
    assert r0.steps_rate == pytest.approx(0.5985)
    assert r0.comm_fraction == pytest.approx(0.14686304633040087)
    assert r0.busbw == pytest.approx(276231316.4738603)
    assert job.eta == pytest.approx(1818468.6021960736)
    assert job.comm_fraction == pytest.approx(0.1373242356555701)
    assert job.running and r0.state == r1.state == "running"


def test_the_watchdog_is_the_pipeline_heartbeat_not_an_alert(recorded):
    config, at, answers = recorded
    snapshot = snapshot_from_answers(URL, at, config, answers)
    assert snapshot.watchdog is True
    assert snapshot.alerts == ()
    answers = dict(answers, alerts=[])
    assert snapshot_from_answers(URL, at, config, answers).watchdog is False


def test_macos_figures_trouble_and_alerts(recorded):
    config, at, answers = recorded
    answers = copy.deepcopy(answers)
    node = {"job": "node", "node": "mini-red"}
    answers["pressure"].append(_sample(2, **node))
    answers["gpu"].append(_sample(0.25, node="mini-red"))
    answers["link_speed"].append(_sample(1.25e9, device="lo", **node))
    answers["peers_down"].append(_sample(1, node="mini-red"))
    for sample in answers["node_up"]:
        if sample["metric"]["node"] == "mini-yellow":
            sample["value"][1] = "0"
    answers["alerts"] += [
        _sample(1, alertname="NodeMemoryPressure", severity="warning", node="mini-red"),
        _sample(1, alertname="TrainerStalled", severity="critical", job_id="j", rank="1"),
    ]
    # A node Prometheus scrapes that the config does not name still shows.
    answers["node_up"].append(_sample(1, job="node", node="mini-blue"))
    snapshot = snapshot_from_answers(URL, at, config, answers)
    red, yellow, blue = snapshot.nodes
    assert (red.pressure, red.gpu, red.link_speed, red.peers_down) == (2, 0.25, 1.25e9, 1)
    assert red.link_utilisation == pytest.approx(max(red.receive, red.transmit) / 1.25e9)
    assert yellow.up is False
    assert (blue.name, blue.role, blue.up, blue.cpu) == ("mini-blue", "?", True, None)
    assert [(a.name, a.severity, a.where) for a in snapshot.alerts] == [
        ("TrainerStalled", "critical", "job_id=j rank=1"),
        ("NodeMemoryPressure", "warning", "node=mini-red"),
    ]
    assert snapshot.watchdog is True


def test_a_finished_and_a_lost_rank(recorded):
    config, at, answers = recorded
    answers = copy.deepcopy(answers)
    for sample in answers["finished"]:
        sample["value"][1] = "1"
    snapshot = snapshot_from_answers(URL, at, config, answers)
    assert [r.state for r in snapshot.jobs[0].ranks] == ["finished", "finished"]
    assert not snapshot.jobs[0].running
    for sample in answers["rank_up"]:
        if sample["metric"]["rank"] == "1":
            sample["value"][1] = "0"
    for sample in answers["finished"]:
        sample["value"][1] = "0"
    # A rank whose target is gone (not scraped) has steps from its last scrape only.
    answers["steps"] = [s for s in answers["steps"] if s["metric"]["rank"] == "0"]
    snapshot = snapshot_from_answers(URL, at, config, answers)
    r0, r1 = snapshot.jobs[0].ranks
    assert (r0.state, r1.state) == ("running", "DOWN")
    assert (r1.steps, r1.lag) == (None, None)
    assert snapshot.jobs[0].slowest is r0


def test_no_job_and_no_rules_loaded(recorded):
    config, at, answers = recorded
    empty = {name: [] for name in answers}
    snapshot = snapshot_from_answers(URL, at, config, empty)
    assert [(n.name, n.up, n.cpu) for n in snapshot.nodes] == [
        ("mini-red", None, None),
        ("mini-yellow", None, None),
    ]
    assert snapshot.jobs == () and snapshot.alerts == () and snapshot.watchdog is False


def test_fetch_asks_every_query_at_one_instant(recorded):
    config, _, answers = recorded
    asked = []
    by_expr = {expr: answers[name] for name, expr in queries.queries("1m").items()}

    def ask(expr: str, when: float) -> list[dict]:
        asked.append(when)
        return by_expr[expr]

    snapshot = queries.fetch(ask, URL, config, "1m", now=lambda: 1234.5)
    assert set(asked) == {1234.5} and len(asked) == len(by_expr)
    assert snapshot.at == 1234.5 and len(snapshot.nodes) == 2
