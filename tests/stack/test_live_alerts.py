"""Alerts on the live stack: a paused rank fires and is delivered to the webhook, a rank lost
mid-job is told apart from a job that ended, and Alertmanager mutes warnings under a
matching critical. The test config sets trainer_stalled_minutes to 0.25 (15 s) and 1 s
scrape and evaluation intervals, so each case takes well under a minute."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.stack.live_stack import start_job, stop_job
from tests.support import wait_until

pytestmark = pytest.mark.e2e


def test_paused_rank_fires_rank_down_and_stalled_and_reaches_the_webhook(live):
    ranks = live.ranks()
    paused, waiting = ranks[1], ranks[0]
    assert (paused.node, waiting.node) == ("mini-yellow", "mini-red")
    started = time.monotonic()
    os.kill(paused.pid, signal.SIGSTOP)
    try:
        # The paused rank does not answer its scrapes: up 0 for 15 s -> TrainerRankDown.
        (down,) = wait_until(
            lambda: live.firing("TrainerRankDown", job_id=live.job_id),
            "TrainerRankDown to fire",
            timeout=60,
            interval=0.5,
        )
        assert down["labels"] == {
            "alertname": "TrainerRankDown",
            "severity": "critical",
            "job": "trainer",
            "instance": paused.target,
            "job_id": live.job_id,
            "rank": "1",
            "local_rank": "0",
            "node": "mini-yellow",
        }
        # The other rank answers but waits in its all-reduce: no step for 15 s, then 15 s
        # more of `for:` -> TrainerStalled.
        (stalled,) = wait_until(
            lambda: live.firing("TrainerStalled", job_id=live.job_id),
            "TrainerStalled to fire",
            timeout=60,
            interval=0.5,
        )
        assert (stalled["labels"]["rank"], stalled["labels"]["node"]) == ("0", "mini-red")

        # Alertmanager delivers both to the webhook, through the critical route.
        for name in ("TrainerRankDown", "TrainerStalled"):
            receiver, delivered = wait_until(
                lambda name=name: [
                    (r, a)
                    for r, a in live.webhook.alerts(name)
                    if a["labels"].get("job_id") == live.job_id
                ][:1],
                f"Alertmanager to deliver {name}",
                timeout=30,
                interval=0.5,
            )[0]
            assert receiver == "critical"
            assert delivered["labels"]["cluster"] == "local"  # the external label
            assert delivered["annotations"]["runbook_url"] == f"docs/runbooks.md#{name.lower()}"
            assert f"of job {live.job_id}" in delivered["annotations"]["description"]
        elapsed = time.monotonic() - started
        assert elapsed < 60, f"alerting took {elapsed:.0f}s"
    finally:
        os.kill(paused.pid, signal.SIGCONT)

    # Resumed, the rank answers and the job steps again: both alerts clear.
    wait_until(
        lambda: (
            not live.active("TrainerRankDown", "firing", job_id=live.job_id)
            and not live.active("TrainerStalled", "firing", job_id=live.job_id)
        ),
        "the alerts to clear after SIGCONT",
        timeout=30,
        interval=0.5,
    )


def test_rank_lost_mid_job_fires_but_a_job_that_ended_does_not(live):
    pid = os.getpid()
    ending, lost = f"ends-{pid}", f"lost-{pid}"
    jobs = {
        ending: start_job(
            live.config,
            live.config_file,
            ending,
            live.logs,
            steps=40,
            single_rank=True,
            fresh_ports=True,
            # Paced and lingering for several 1 s scrapes: a busy machine still sees the
            # rank up, then its finished flag, before it leaves /sd.
            extra=("--step-sleep", "0.1", "--linger", "10"),
        ),
        lost: start_job(
            live.config,
            live.config_file,
            lost,
            live.logs,
            single_rank=True,
            fresh_ports=True,
        ),
    }
    try:
        for job_id in jobs:
            live.wait_for_series(f'up{{job_id="{job_id}"}} == 1', timeout=90)
        # SIGKILL the rank of the second job: torchrun (no restarts left) ends the job, the
        # exporter drops the dead rank from /sd, and it is gone before its job finished.
        os.kill(live.ranks(lost)[0].pid, signal.SIGKILL)
        for agent in jobs[ending]:
            agent.wait(90)
        wait_until(
            lambda: not live.query(f'up{{job_id=~"{ending}|{lost}"}}'),
            "both jobs to leave /sd",
            timeout=60,
            interval=0.5,
        )
        # Gone before finishing: TrainerRankDown fires for the lost job's rank...
        wait_until(
            lambda: live.firing("TrainerRankDown", job_id=lost),
            "TrainerRankDown for the lost job",
            timeout=40,
            interval=0.5,
        )
        # ... while the job that ended normally never even went pending.
        for state in ("pending", "firing"):
            assert live.active("TrainerRankDown", state, job_id=ending) == []
    finally:
        for agents in jobs.values():
            stop_job(agents)


def test_alertmanager_mutes_warnings_under_a_matching_critical(live):
    node = f"inhibit-test-{os.getpid()}"
    ends = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()

    def alert(name: str, severity: str, on: str) -> dict:
        labels = {"alertname": name, "severity": severity, "node": on, "cluster": "local"}
        return {"labels": labels, "endsAt": ends}

    posted = requests.post(
        f"{live.alertmanager}/api/v2/alerts",
        json=[
            alert("NodeExporterDown", "critical", node),
            alert("NodeCPUSaturated", "warning", node),
            alert("NodeCPUSaturated", "warning", node + "-other"),
        ],
        timeout=10,
    )
    assert posted.status_code == 200

    def states() -> dict[tuple[str, str], dict]:
        alerts = requests.get(f"{live.alertmanager}/api/v2/alerts", timeout=10).json()
        return {
            (a["labels"]["alertname"], a["labels"]["node"]): a["status"]
            for a in alerts
            if a["labels"].get("node", "").startswith(node)
        }

    wait_until(
        lambda: states().get(("NodeCPUSaturated", node), {}).get("state") == "suppressed",
        "the warning under the critical to be inhibited",
        timeout=20,
        interval=0.2,
    )
    status = states()
    assert status[("NodeCPUSaturated", node)]["inhibitedBy"]
    assert status[("NodeExporterDown", node)]["state"] == "active"
    assert status[("NodeCPUSaturated", node + "-other")]["state"] == "active"
