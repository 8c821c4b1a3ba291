"""`minicluster render`: the files deploy installs, checked with the services' own tools."""

from __future__ import annotations

import configparser
import plistlib
import subprocess
from pathlib import Path

import yaml

from minicluster.cli import main
from minicluster.core import layout
from minicluster.core.config import parse_config
from minicluster.render import bundle, grafana, launchd, prometheus_config
from tests.stack.helpers import local_config, repo_config
from tests.stack.tlsfiles import install_tls
from tests.support import require_tool

EXPECTED_FILES = {
    "prometheus/prometheus.yml",
    "prometheus/rules/node.yml",
    "prometheus/rules/trainer.yml",
    "prometheus/rules/stack.yml",
    "alertmanager/alertmanager.yml",
    "grafana/grafana.ini",
    "grafana/provisioning/datasources/prometheus.yaml",
    "grafana/provisioning/dashboards/minicluster.yaml",
    "grafana/dashboards/cluster-overview.json",
    "grafana/dashboards/training-job.json",
    "grafana/dashboards/network.json",
    "launchd/mini-red/io.minicluster.exporter.plist",
    "launchd/mini-red/io.minicluster.prometheus.plist",
    "launchd/mini-red/io.minicluster.alertmanager.plist",
    "launchd/mini-red/io.minicluster.grafana.plist",
    "launchd/mini-yellow/io.minicluster.exporter.plist",
}


def _render_cli(tmp_path: Path) -> Path:
    """Run `minicluster render --config FILE --out DIR` on config.yaml with tmp secrets."""
    config_file = tmp_path / "config.yaml"
    config_file.write_text(repo_config(tmp_path).to_yaml())
    out = tmp_path / "out"
    assert main(["render", "--config", str(config_file), "--out", str(out)]) == 0
    return out


def test_render_writes_every_file_and_nothing_else(tmp_path):
    out = _render_cli(tmp_path)
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == EXPECTED_FILES


def test_rendered_prometheus_config_passes_promtool_and_follows_the_contract(tmp_path):
    promtool = require_tool("promtool", "apt-get install prometheus (Homebrew: prometheus)")
    out = _render_cli(tmp_path)
    # The certificates it names exist on the master only: off it, promtool checks syntax.
    check = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(out / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr

    prom = yaml.safe_load((out / "prometheus" / "prometheus.yml").read_text())
    assert prom["global"] == {
        "scrape_interval": "15s",
        "scrape_timeout": "10s",
        "evaluation_interval": "15s",
        "external_labels": {"cluster": "minis"},
    }
    jobs = {job["job_name"]: job for job in prom["scrape_configs"]}
    assert set(jobs) == {"prometheus", "alertmanager", "node", "trainer"}
    assert jobs["node"]["static_configs"] == [
        {"targets": ["192.0.2.10:9100"], "labels": {"node": "mini-red", "role": "master"}},
        {"targets": ["192.0.2.11:9100"], "labels": {"node": "mini-yellow", "role": "worker"}},
    ]
    client_tls = {
        "ca_file": "/opt/minicluster/tls/ca.crt",
        "cert_file": "/opt/minicluster/tls/prometheus-client.crt",
        "key_file": "/opt/minicluster/tls/prometheus-client.key",
    }
    assert jobs["trainer"]["http_sd_configs"] == [
        {"url": "https://192.0.2.10:9100/sd", "refresh_interval": "5s", "tls_config": client_tls},
        {"url": "https://192.0.2.11:9100/sd", "refresh_interval": "5s", "tls_config": client_tls},
    ]
    for name in ("node", "trainer"):
        assert jobs[name]["scheme"] == "https"
        assert jobs[name]["tls_config"] == client_tls
        assert "basic_auth" not in jobs[name]
    login = {
        "scheme": "https",
        "basic_auth": {
            "username": "minicluster",
            "password_file": "/opt/minicluster/tls/web-password",
        },
        "tls_config": {"ca_file": "/opt/minicluster/tls/ca.crt"},
    }
    (alerting,) = prom["alerting"]["alertmanagers"]
    for section in (jobs["prometheus"], jobs["alertmanager"], alerting):
        assert {key: section[key] for key in login} == login
    assert jobs["prometheus"]["static_configs"][0]["targets"] == ["192.0.2.10:9090"]
    assert jobs["alertmanager"]["static_configs"][0]["targets"] == ["192.0.2.10:9093"]
    assert prom["alerting"]["alertmanagers"][0]["static_configs"] == [
        {"targets": ["192.0.2.10:9093"]}
    ]
    assert prom["rule_files"] == ["rules/*.yml"]


PLAIN_PROMETHEUS_YML = """\
# Rendered by `minicluster render` from the config of cluster 'minis'.
# Do not edit: change config.yaml and render again.
global:
  scrape_interval: 15s
  scrape_timeout: 10s
  evaluation_interval: 15s
  external_labels:
    cluster: minis
alerting:
  alertmanagers:
  - api_version: v2
    static_configs:
    - targets:
      - 192.0.2.10:9093
rule_files:
- rules/*.yml
scrape_configs:
- job_name: prometheus
  static_configs:
  - targets:
    - 192.0.2.10:9090
    labels:
      node: mini-red
      role: master
- job_name: alertmanager
  static_configs:
  - targets:
    - 192.0.2.10:9093
    labels:
      node: mini-red
      role: master
- job_name: node
  static_configs:
  - targets:
    - 192.0.2.10:9100
    labels:
      node: mini-red
      role: master
  - targets:
    - 192.0.2.11:9100
    labels:
      node: mini-yellow
      role: worker
- job_name: trainer
  http_sd_configs:
  - url: http://192.0.2.10:9100/sd
    refresh_interval: 5s
  - url: http://192.0.2.11:9100/sd
    refresh_interval: 5s
"""


def _with(config, **sections: dict):
    data = config.model_dump(mode="json")
    for section, values in sections.items():
        data[section].update(values)
    return parse_config(data, "<test>")


def test_without_tls_prometheus_config_is_plain_http_with_no_credentials(tmp_path):
    config = _with(repo_config(tmp_path), security={"tls": False})
    assert prometheus_config.render_prometheus_config(config) == PLAIN_PROMETHEUS_YML


def _keys(data: object) -> list[str]:
    if isinstance(data, dict):
        return [*data, *(key for value in data.values() for key in _keys(value))]
    if isinstance(data, list):
        return [key for value in data for key in _keys(value)]
    return []


def test_tls_prometheus_config_passes_promtool_with_the_masters_files(tmp_path):
    """The full check (files included) on a master whose tls folder is in place."""
    promtool = require_tool("promtool", "apt-get install prometheus (Homebrew: prometheus)")
    config = repo_config(tmp_path)
    data = config.model_dump(mode="json")
    for node in data["nodes"]:
        node["install_dir"] = str(tmp_path / "node" / node["name"])
    data["security"]["pki_dir"] = str(tmp_path / "pki")
    config = parse_config(data, "<test>")
    master = config.master
    tls = Path(layout.tls_dir(master))
    install_tls(config, master)
    password = Path(layout.tls_path(master, "web-password")).read_text().strip()
    bundle.write_bundle(config, tmp_path / "out")
    prom_yml = tmp_path / "out" / "prometheus" / "prometheus.yml"
    check = subprocess.run(
        [promtool, "check", "config", str(prom_yml)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "3 rule files found" in check.stdout
    text = prom_yml.read_text()
    assert password not in text
    prom = yaml.safe_load(text)
    # The one credential is named by its file; no password, bearer token or key inline.
    assert {key for key in _keys(prom) if "password" in key or "token" in key} == {"password_file"}
    for job in prom["scrape_configs"]:
        assert job["scheme"] == "https"
        assert job["tls_config"]["ca_file"] == str(tls / "ca.crt")
        for sd in job.get("http_sd_configs", []):
            assert sd["url"].startswith("https://")
            assert sd["tls_config"] == job["tls_config"]


def test_local_profile_renders_a_valid_config_too(tmp_path):
    promtool = require_tool("promtool", "apt-get install prometheus (Homebrew: prometheus)")
    config = local_config(tmp_path)
    bundle.write_bundle(config, tmp_path / "out")
    prom_yml = tmp_path / "out" / "prometheus" / "prometheus.yml"
    check = subprocess.run([promtool, "check", "config", str(prom_yml)], capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
    prom = yaml.safe_load(prom_yml.read_text())
    node_job = next(job for job in prom["scrape_configs"] if job["job_name"] == "node")
    assert [c["targets"] for c in node_job["static_configs"]] == [
        ["127.0.0.1:9100"],
        ["127.0.0.1:9101"],
    ]


def test_alertmanager_config_passes_amtool_and_routes_by_severity(tmp_path):
    amtool = require_tool("amtool", "apt-get install prometheus-alertmanager")
    config_file = tmp_path / "config.yaml"
    data = repo_config(tmp_path).model_dump(mode="json")
    data["alertmanager"]["webhook_url"] = "http://127.0.0.1:5001/alerts"
    config_file.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    assert main(["render", "--config", str(config_file), "--out", str(out)]) == 0
    am_yml = out / "alertmanager" / "alertmanager.yml"
    check = subprocess.run([amtool, "check-config", str(am_yml)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    # The webhook URL may carry a token: the file is private.
    assert am_yml.stat().st_mode & 0o777 == 0o600

    def receiver(*labels: str) -> str:
        routed = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={am_yml}", *labels],
            capture_output=True,
            text=True,
            check=True,
        )
        return routed.stdout.strip()

    assert receiver("alertname=TrainerRankDown", "severity=critical") == "critical"
    assert receiver("alertname=NodeSwapping", "severity=warning") == "warning"
    assert receiver("alertname=Watchdog", "severity=none") == "watchdog"
    assert receiver("alertname=Other") == "default"

    am = yaml.safe_load(am_yml.read_text())
    assert all(
        r["webhook_configs"] == [{"url": "http://127.0.0.1:5001/alerts", "send_resolved": True}]
        for r in am["receivers"]
    )
    assert am["inhibit_rules"] == [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["cluster", "node", "job_id"],
        }
    ]


def test_without_a_webhook_receivers_have_no_integrations(tmp_path):
    amtool = require_tool("amtool", "apt-get install prometheus-alertmanager")
    out = _render_cli(tmp_path)
    am_yml = out / "alertmanager" / "alertmanager.yml"
    am = yaml.safe_load(am_yml.read_text())
    assert [r["name"] for r in am["receivers"]] == ["default", "critical", "warning", "watchdog"]
    assert all(set(r) == {"name"} for r in am["receivers"])
    assert (
        subprocess.run([amtool, "check-config", str(am_yml)], capture_output=True).returncode == 0
    )


def test_grafana_ini_is_hardened_and_holds_no_secret(tmp_path):
    out = _render_cli(tmp_path)
    text = (out / "grafana" / "grafana.ini").read_text()
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(text)
    assert ini["server"]["http_addr"] == "192.0.2.10"
    assert ini["server"]["http_port"] == "3000"
    assert ini["security"]["admin_user"] == "admin"
    assert ini["security"]["admin_password"] == (
        "$__file{/opt/minicluster/secrets/grafana-admin-password}"
    )
    assert ini["security"]["secret_key"] == "$__file{/opt/minicluster/secrets/grafana-secret-key}"
    assert ini["auth.anonymous"]["enabled"] == "false"
    assert ini["users"]["allow_sign_up"] == "false"
    assert ini["snapshots"]["external_enabled"] == "false"
    assert ini["analytics"]["reporting_enabled"] == "false"
    assert ini["paths"]["provisioning"] == "/opt/minicluster/stack/grafana/provisioning"
    for secret in grafana.secret_files(repo_config(tmp_path)):
        assert secret.local.read_text() not in text
    # TLS by default: Grafana serves https with the master's certificate, and its login
    # cookie never goes over plain http.
    assert ini["server"]["protocol"] == "https"
    assert ini["server"]["cert_file"] == "/opt/minicluster/tls/node.crt"
    assert ini["server"]["cert_key"] == "/opt/minicluster/tls/node.key"
    assert ini["security"]["cookie_secure"] == "true"


def test_grafana_ini_without_tls_is_plain_http(tmp_path):
    data = repo_config(tmp_path).model_dump(mode="json")
    data["security"]["tls"] = False
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(grafana.grafana_ini(parse_config(data, "<test>")))
    assert ini["server"]["protocol"] == "http"
    assert "cert_file" not in ini["server"]
    assert ini["security"]["cookie_secure"] == "false"


def test_grafana_secrets_are_generated_once_mode_0600(tmp_path):
    config = repo_config(tmp_path)
    password, key = (s.local for s in grafana.ensure_secrets(config))
    assert password.parent == tmp_path / "secrets"
    for path in (password, key):
        assert path.stat().st_mode & 0o777 == 0o600
    assert password.parent.stat().st_mode & 0o777 == 0o700
    first = password.read_text()
    assert len(first) >= 32 and first != "admin"
    assert len(key.read_text()) >= 40
    assert password.read_text() != key.read_text()
    # A second render keeps the secrets (a changed password would lock the admin out) but
    # tightens a file someone loosened.
    password.chmod(0o644)
    grafana.ensure_secrets(config)
    assert password.read_text() == first
    assert password.stat().st_mode & 0o777 == 0o600


def test_grafana_secret_inside_the_repository_is_refused(tmp_path):
    data = repo_config(tmp_path).model_dump(mode="json")
    data["grafana"]["admin_password_file"] = str(
        Path(__file__).resolve().parents[2] / "grafana-admin-password"
    )
    from minicluster.core.config import ConfigError, parse_config

    config = parse_config(data, "<test>")
    try:
        grafana.ensure_secrets(config)
    except ConfigError as exc:
        assert "inside the repository" in str(exc)
    else:
        raise AssertionError("a secret inside the repository was accepted")


def test_grafana_provisioning_pins_the_datasource_uid_and_locks_dashboards(tmp_path):
    out = _render_cli(tmp_path)
    sources = yaml.safe_load(
        (out / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )["datasources"]
    assert sources == [
        {
            "name": "Prometheus (minis)",
            "uid": grafana.DATASOURCE_UID,
            "type": "prometheus",
            "access": "proxy",
            "url": "https://192.0.2.10:9090",
            "isDefault": True,
            "editable": False,
            "jsonData": {
                "timeInterval": "15s",
                "httpMethod": "POST",
                "tlsAuthWithCACert": True,
            },
            # Prometheus' web user; Grafana reads the password and the CA from the
            # master's files, so neither is in the rendered tree.
            "basicAuth": True,
            "basicAuthUser": "minicluster",
            "secureJsonData": {
                "basicAuthPassword": "$__file{/opt/minicluster/tls/web-password}",
                "tlsCACert": "$__file{/opt/minicluster/tls/ca.crt}",
            },
        }
    ]
    plain = grafana.datasource_provisioning(_with(repo_config(tmp_path), security={"tls": False}))
    (source,) = plain["datasources"]
    assert source["url"] == "http://192.0.2.10:9090"
    assert not {"basicAuth", "basicAuthUser", "secureJsonData"} & set(source)
    assert source["jsonData"] == {"timeInterval": "15s", "httpMethod": "POST"}
    (provider,) = yaml.safe_load(
        (out / "grafana/provisioning/dashboards/minicluster.yaml").read_text()
    )["providers"]
    assert provider["allowUiUpdates"] is False
    assert provider["disableDeletion"] is True
    assert provider["folder"] == "minicluster"
    assert provider["options"]["path"] == "/opt/minicluster/stack/grafana/dashboards"


def test_launchd_plists_use_absolute_paths_and_the_node_layout(tmp_path):
    out = _render_cli(tmp_path)
    config = repo_config(tmp_path)

    def load(node: str, service: str) -> dict:
        return plistlib.loads((out / f"launchd/{node}/io.minicluster.{service}.plist").read_bytes())

    exporter = load("mini-yellow", "exporter")
    assert exporter["ProgramArguments"] == [
        "/opt/minicluster/venv/bin/python",
        "-m",
        "minicluster.exporter",
        "--config",
        "/opt/minicluster/config.yaml",
        "--node",
        "mini-yellow",
        # HTTPS with client certificates required.
        "--web-config",
        "/opt/minicluster/tls/exporter-web.yml",
    ]
    prometheus = load("mini-red", "prometheus")
    assert prometheus["ProgramArguments"] == [
        "/opt/homebrew/bin/prometheus",
        "--config.file=/opt/minicluster/stack/prometheus/prometheus.yml",
        "--storage.tsdb.path=/opt/minicluster/data/prometheus",
        "--storage.tsdb.retention.time=15d",
        "--web.listen-address=192.0.2.10:9090",
        "--web.config.file=/opt/minicluster/tls/web.yml",
    ]
    # No lifecycle endpoint: POST /-/quit would be open to the LAN (deploy reloads by SIGHUP).
    assert not any("lifecycle" in arg for arg in prometheus["ProgramArguments"])
    alertmanager = load("mini-red", "alertmanager")
    assert "--cluster.listen-address=" in alertmanager["ProgramArguments"]
    assert "--web.listen-address=192.0.2.10:9093" in alertmanager["ProgramArguments"]
    assert "--web.config.file=/opt/minicluster/tls/web.yml" in alertmanager["ProgramArguments"]
    grafana_plist = load("mini-red", "grafana")
    assert grafana_plist["ProgramArguments"] == [
        "/opt/homebrew/bin/grafana",
        "server",
        "--config=/opt/minicluster/stack/grafana/grafana.ini",
        "--homepath=/opt/homebrew/opt/grafana/share/grafana",
    ]
    for plist in (exporter, prometheus, alertmanager, grafana_plist):
        assert plist["UserName"] == "admin"
        assert plist["EnvironmentVariables"]["PYTHONUNBUFFERED"] == "1"
        assert plist["WorkingDirectory"].startswith("/opt/minicluster")
    assert prometheus["WorkingDirectory"] == layout.data_dir(config.master, "prometheus")
    # Only the master runs the monitoring services.
    assert sorted(p.name for p in (out / "launchd" / "mini-yellow").iterdir()) == [
        "io.minicluster.exporter.plist"
    ]


def test_render_removes_files_it_no_longer_renders(tmp_path):
    out = _render_cli(tmp_path)
    stale = out / "prometheus" / "rules" / "old.yml"
    stale.write_text("groups: []\n")
    keep = out / "notes.txt"
    keep.write_text("mine")
    _render_cli(tmp_path)
    assert not stale.exists()
    assert keep.read_text() == "mine"


def test_without_tls_no_service_is_given_a_web_config(tmp_path):
    config = _with(repo_config(tmp_path), security={"tls": False})
    exporter = launchd.exporter_plist(config, config.master, layout.config_path(config.master))
    assert exporter["ProgramArguments"][-2:] == ["--node", "mini-red"]
    for plist in launchd.master_plists(config).values():
        assert not any("web.config" in arg for arg in plist["ProgramArguments"])
