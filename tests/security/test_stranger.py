"""A stranger on the LAN against the deployed pair, during a job: it reads and writes nothing.

The pair is deployed with the harness config (security.tls on, its PKI under the harness's
tmp folder) and runs the built-in trainer, whose ranks linger so that every port is up at
once. From a third namespace on the same bridge (tests/hosts/stranger.py), holding no
credential of the cluster, every port of the stack is tried:

    exporters, ranks    plain HTTP gets no HTTP answer; TLS without a client certificate,
                        or with one from another CA (a forged "minicluster-operator"),
                        is refused in the handshake
    Prometheus,         plain HTTP gets no data; over TLS every read and write (queries,
    Alertmanager        targets, /-/reload, /-/quit, admin API, silences, alerts) is 401
                        without the password and with a wrong one
    rendezvous          no HTTP answer, and closed with the job

Meanwhile the operator, with the cluster's credentials, sees every target up, nothing was
silenced or reloaded, and the job succeeds. Grafana is not installed on the simulated hosts.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from minicluster.core.config import Config
from minicluster.render.launchd import LABEL_PREFIX
from minicluster.security.pki import ensure_pki
from tests.hosts.clients import alertmanager_url, prometheus_url, service_get
from tests.hosts.fixtures import stranger, two_minis  # noqa: F401  (the pair, the stranger)
from tests.hosts.stranger import Stranger
from tests.launcher.conftest import cli, deploy_pair, pair_prometheus
from tests.support import job_failure, wait_until

pytestmark = pytest.mark.e2e

PROBE = Path(__file__).with_name("stranger_probe.py")
STEPS = 40
# Each rank's /metrics (and the rendezvous store) stays up this long after training: all
# the stranger's tries and the operator's checks happen inside it.
LINGER = 75
EVERYTHING_SILENCED = json.dumps(
    {
        "matchers": [{"name": "alertname", "value": ".+", "isRegex": True, "isEqual": True}],
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "2036-01-01T00:00:00Z",
        "createdBy": "stranger",
        "comment": "mute the cluster",
    }
)
FAKE_ALERT = json.dumps([{"labels": {"alertname": "StrangerWasHere", "severity": "critical"}}])
WRONG_PASSWORD = "Basic " + base64.b64encode(b"minicluster:not-the-password").decode()


@pytest.fixture(scope="module")
def minis(two_minis):  # noqa: F811
    """The pair deployed with the harness config: TLS on, the harness's own PKI."""
    assert two_minis.config.security.tls
    deploy_pair(two_minis)
    return two_minis


def forged_operator(config: Config, root: Path) -> tuple[str, str]:
    """A client certificate named like the operator's, signed by a CA of the stranger's own."""
    security = config.security.model_copy(update={"pki_dir": str(root)})
    rogue = ensure_pki(config.model_copy(update={"security": security}))
    return str(rogue.client_cert("operator")), str(rogue.client_key("operator"))


def tries(outsider: Stranger, specs: list[dict]) -> list[dict]:
    """Every request in `specs`, made from the stranger's namespace; one answer each."""
    done = outsider.run([sys.executable, str(PROBE), json.dumps(specs)])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def mutual_tls_specs(name: str, host: str, port: int, forged: tuple[str, str]) -> list[dict]:
    """An exporter's or a rank's port: plain, TLS without a certificate, with a forged one."""
    base = {"host": host, "port": port, "what": name}
    specs = []
    for path in ("/metrics", "/sd"):
        specs += [
            {**base, "path": path, "tls": False, "how": "plain http"},
            {**base, "path": path, "tls": True, "how": "tls, no client certificate"},
            {**base, "path": path, "tls": True, "cert": forged[0], "key": forged[1],
             "how": "tls, certificate of another CA"},
        ]  # fmt: skip
    return specs


def password_specs(name: str, host: str, port: int, requests: list[tuple]) -> list[dict]:
    """Prometheus' or Alertmanager's port: plain, then each request without the password
    and with a wrong one."""
    base = {"host": host, "port": port, "what": name}
    specs = [{**base, "path": requests[0][1], "tls": False, "how": "plain http"}]
    for method, path, body in requests:
        request = {**base, "method": method, "path": path, "body": body, "tls": True}
        if body:
            request["headers"] = {"Content-Type": "application/json"}
        specs.append({**request, "how": f"{method} {path} without credentials"})
        wrong = {**request.get("headers", {}), "Authorization": WRONG_PASSWORD}
        specs.append({**request, "headers": wrong, "how": f"{method} {path}, wrong password"})
    return specs


def ranks_up(prom, job: subprocess.Popen) -> list:
    """Both ranks' `up` series once Prometheus scrapes them; the job's output if it ended."""
    if job.poll() is not None:
        out, err = job.communicate()
        result = subprocess.CompletedProcess(job.args, job.returncode, out, err)
        pytest.fail(f"the job ended before its ranks were scraped:\n{job_failure(result)}")
    found = prom.query('up{job="trainer"} == 1')
    return found if len(found) == 2 else []


def last_reload(config: Config) -> float:
    """When Prometheus last loaded its config, from its own /metrics (read with the
    credentials): a query would depend on its self-scrape having run yet."""
    text = service_get(config, prometheus_url(config, "/metrics")).text
    for family in text_string_to_metric_families(text):
        if family.name == "prometheus_config_last_reload_success_timestamp_seconds":
            return family.samples[0].value
    raise AssertionError("Prometheus' /metrics has no config reload timestamp")


def describe(spec: dict, answer: dict) -> str:
    return f"{spec['what']} {spec['host']}:{spec['port']} ({spec['how']}): {answer}"


def test_a_stranger_on_the_lan_reads_and_writes_nothing(minis, stranger, tmp_path):  # noqa: F811
    cluster = minis
    config = cluster.config
    master = config.master
    forged = forged_operator(config, tmp_path / "stranger-pki")
    prom = pair_prometheus(cluster)
    prometheus_pid = cluster.red.service_pid(LABEL_PREFIX + "prometheus")
    reloaded_at = last_reload(config)

    job = subprocess.Popen(
        cli("run-job", "--config", str(cluster.config_path),
            "--logs-dir", str(tmp_path / "logs"), "--runs-dir", str(tmp_path / "runs"),
            "--steps", str(STEPS), "--log-interval", "5", "--linger", str(LINGER)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        ranks = wait_until(
            lambda: ranks_up(prom, job), "Prometheus to scrape both ranks over TLS", timeout=120
        )
        rank_endpoints = sorted(s.labels["instance"] for s in ranks)
        specs = []
        for node in config.nodes:
            specs += mutual_tls_specs(f"exporter@{node.name}", node.address, node.exporter_port,
                                      forged)  # fmt: skip
        for instance in rank_endpoints:
            host, _, port = instance.rpartition(":")
            specs += mutual_tls_specs(f"rank {instance}", host, int(port), forged)
        rendezvous = {"host": master.address, "port": config.trainer.rendezvous_port,
                      "what": "rendezvous", "path": "/"}  # fmt: skip
        specs += [{**rendezvous, "tls": False, "how": "plain http"},
                  {**rendezvous, "tls": True, "how": "tls"}]  # fmt: skip
        specs += password_specs("Prometheus", master.address, config.prometheus.port, [
            ("GET", "/api/v1/query?query=up", ""),
            ("GET", "/api/v1/targets", ""),
            ("GET", "/federate?match[]=up", ""),
            ("GET", "/metrics", ""),
            ("POST", "/-/reload", ""),
            ("POST", "/-/quit", ""),
            ("POST", "/api/v1/admin/tsdb/snapshot", ""),
        ])  # fmt: skip
        specs += password_specs("Alertmanager", master.address, config.alertmanager.port, [
            ("GET", "/api/v2/alerts", ""),
            ("GET", "/api/v2/silences", ""),
            ("POST", "/api/v2/silences", EVERYTHING_SILENCED),
            ("POST", "/api/v2/alerts", FAKE_ALERT),
            ("POST", "/-/reload", ""),
        ])  # fmt: skip

        answers = tries(stranger, specs)

        leaks = []
        for spec, answer in zip(specs, answers, strict=True):
            head = answer["head"]
            if "# HELP" in head or "# TYPE" in head or '"status":"success"' in head:
                leaks.append(describe(spec, answer))  # data, whatever the status line says
            elif spec["what"] in ("Prometheus", "Alertmanager") and spec["tls"]:
                if answer["status"] != 401:
                    leaks.append(describe(spec, answer))
            elif spec["what"] in ("Prometheus", "Alertmanager"):
                # Go's TLS server answers plain HTTP with a fixed 400 and nothing else.
                if answer["status"] not in (None, 400):
                    leaks.append(describe(spec, answer))
            elif answer["status"] is not None:  # exporters, ranks, rendezvous: no HTTP at all
                leaks.append(describe(spec, answer))
        assert leaks == [], "\n".join(leaks)
        # 2 exporters and 2 ranks x 6, the rendezvous x 2, Prometheus 15, Alertmanager 11.
        assert len(answers) == 4 * 6 + 2 + 15 + 11

        # The operator, with the cluster's credentials: every target up, nothing muted,
        # no alert injected, Prometheus neither reloaded nor restarted.
        up = {(s.labels["job"], s.labels["instance"]): s.value for s in prom.query("up")}
        assert {job for job, _ in up} >= {"node", "trainer", "prometheus", "alertmanager"}
        assert set(up.values()) == {1.0}, up
        silences = service_get(config, alertmanager_url(config, "/api/v2/silences")).json()
        assert silences == []
        alerts = service_get(config, alertmanager_url(config, "/api/v2/alerts")).json()
        assert "StrangerWasHere" not in json.dumps(alerts)
        assert cluster.red.service_pid(LABEL_PREFIX + "prometheus") == prometheus_pid
        assert last_reload(config) == reloaded_at
        status = service_get(config, prometheus_url(config, "/api/v1/status/buildinfo"))
        assert status.status_code == 200

        out, err = job.communicate(timeout=600)
    finally:
        if job.poll() is None:
            job.kill()
            job.communicate()
    result = subprocess.CompletedProcess(job.args, job.returncode, out, err)
    assert job.returncode == 0, job_failure(result)
    record = json.loads(next((tmp_path / "runs").glob("*.json")).read_text())
    assert record["status"] == "succeeded"
    assert record["summary"]["steps"] == STEPS

    # The job's ports closed with it.
    after = tries(stranger, [
        {**rendezvous, "tls": False, "how": "after the job"},
        *({"host": i.rpartition(":")[0], "port": int(i.rpartition(":")[2]), "what": "rank",
           "tls": False, "how": "after the job"} for i in rank_endpoints),
    ])  # fmt: skip
    assert [a["error"] for a in after] == ["connect: Connection refused"] * 3, after
