"""grafana.ini lets Grafana 12/13 start on a master without internet access: nothing is
downloaded or checked at start, so the provisioned datasource and dashboards work."""

from __future__ import annotations

import configparser

from minicluster.render import grafana
from tests.stack.helpers import repo_config


def _ini(tmp_path) -> configparser.ConfigParser:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(grafana.grafana_ini(repo_config(tmp_path)))
    return ini


def test_no_plugin_is_preinstalled_or_updated_from_the_internet(tmp_path):
    plugins = _ini(tmp_path)["plugins"]
    # Grafana 12+ would otherwise download its default plugin list, the Prometheus
    # datasource among them, and replace bundled plugins with newer ones at start.
    assert plugins["preinstall_disabled"] == "true"
    assert plugins["preinstall_auto_update"] == "false"
    assert plugins["public_key_retrieval_disabled"] == "true"
    assert plugins["plugin_admin_enabled"] == "false"
    assert "preinstall" not in plugins
    assert "preinstall_sync" not in plugins


def test_update_checks_reporting_news_and_external_snapshots_are_off(tmp_path):
    ini = _ini(tmp_path)
    assert dict(ini["analytics"]) == {
        "reporting_enabled": "false",
        "check_for_updates": "false",
        "check_for_plugin_updates": "false",
        "feedback_links_enabled": "false",
    }
    assert ini["news"]["news_feed_enabled"] == "false"
    assert ini["snapshots"]["external_enabled"] == "false"
    assert ini["security"]["disable_gravatar"] == "true"


def test_the_datasource_is_the_bundled_prometheus_plugin(tmp_path):
    datasource = grafana.datasource_provisioning(repo_config(tmp_path))["datasources"][0]
    assert datasource["type"] == "prometheus"
    assert datasource["uid"] == grafana.DATASOURCE_UID
    assert datasource["url"] == "https://192.0.2.10:9090"  # security.tls, the default
