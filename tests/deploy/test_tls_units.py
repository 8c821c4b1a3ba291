"""Deploy with security.tls, without hosts: what the probes present, what restarts the
exporter, what each node is sent and with which mode."""

from __future__ import annotations

import base64
import http.server
import json
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from minicluster.core import layout
from minicluster.core.config import Config
from minicluster.deploy import endpoints
from minicluster.deploy.plan import exporter_inputs, octal_mode
from minicluster.deploy.probe import remote_command
from minicluster.deploy.stack import render_stack
from minicluster.security.pki import Pki, ensure_pki
from tests.security.helpers import cluster_config
from tests.support import free_port

PASSWORD_HEADER = "Basic " + base64.b64encode(b"minicluster:right").decode()


@pytest.fixture
def config(tmp_path) -> Config:
    """Three nodes, their PKI and Grafana's secrets under tmp_path (never ~/.config)."""
    config = cluster_config(tmp_path / "pki")
    grafana = config.grafana.model_copy(
        update={
            "admin_password_file": str(tmp_path / "secrets" / "grafana-admin-password"),
            "secret_key_file": str(tmp_path / "secrets" / "grafana-secret-key"),
        }
    )
    return config.model_copy(update={"grafana": grafana})


@pytest.fixture
def pki(config: Config) -> Pki:
    return ensure_pki(config)


def run_probe(*args: str) -> dict:
    command = remote_command(sys.executable, *args)
    return json.loads(subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                                     check=True, env={"PATH": "/usr/bin:/bin"}).stdout)  # fmt: skip


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        needs_password = self.server.needs_password  # type: ignore[attr-defined]
        if needs_password and self.headers.get("Authorization") != PASSWORD_HEADER:
            self.send_response(401)
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"up 1\n")

    def log_message(self, *args):
        pass


@contextmanager
def https_server(pki: Pki, *, client_certificates: bool, password: bool) -> Iterator[str]:
    """mini-blue's certificate (127.0.0.1) on a local port; yields its https URL."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.node_cert("mini-blue"), pki.node_key("mini-blue"))
    if client_certificates:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca_cert)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Handler)
    server.needs_password = password  # type: ignore[attr-defined]
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()


def test_the_probe_presents_the_client_certificate_an_exporter_requires(pki: Pki):
    client = ["--cert", str(pki.client_cert("prometheus")),
              "--key", str(pki.client_key("prometheus"))]  # fmt: skip
    with https_server(pki, client_certificates=True, password=False) as url:
        answered = run_probe("http", url, "--ca", str(pki.ca_cert), *client)
        assert answered["status"] == 200 and answered["body"] == "up 1\n"
        without = run_probe("http", url, "--ca", str(pki.ca_cert))
        assert without["status"] is None and without["error"]
        # The system's CAs do not know the cluster's: no answer is trusted without --ca.
        untrusted = run_probe("http", url, *client)
        assert untrusted["status"] is None and "CERTIFICATE_VERIFY_FAILED" in untrusted["error"]


def test_the_probe_logs_in_where_a_password_is_required(pki: Pki, tmp_path):
    right, wrong = tmp_path / "right", tmp_path / "wrong"
    right.write_text("right\n")
    wrong.write_text("wrong\n")
    with https_server(pki, client_certificates=False, password=True) as url:
        ca = ["--ca", str(pki.ca_cert)]
        assert run_probe("http", url, *ca, "--auth", f"minicluster:{right}")["status"] == 200
        assert run_probe("http", url, *ca, "--auth", f"minicluster:{wrong}")["status"] == 401
        assert run_probe("http", url, *ca)["status"] == 401


def test_a_missing_tls_file_is_an_answer_not_a_traceback(tmp_path):
    missing = run_probe("http", "https://127.0.0.1:1/", "--ca", str(tmp_path / "ca.crt"))
    assert missing["status"] is None and missing["error"].startswith("TLS files:")


def test_the_master_probes_as_prometheus_does(config: Config):
    tls = layout.tls_dir(config.master)
    assert endpoints.exporter_url(config, config.nodes[1]) == (
        "https://mini-yellow.lan:9100/metrics"
    )
    assert endpoints.exporter_credentials(config) == [
        "--ca", f"{tls}/ca.crt",
        "--cert", f"{tls}/prometheus-client.crt", "--key", f"{tls}/prometheus-client.key",
    ]  # fmt: skip
    assert endpoints.prometheus_url(config, "/-/ready") == "https://10.20.0.5:9090/-/ready"
    assert endpoints.service_credentials(config) == [
        "--ca",
        f"{tls}/ca.crt",
        "--auth",
        f"minicluster:{tls}/web-password",
    ]
    plain = config.model_copy(
        update={"security": config.security.model_copy(update={"tls": False})}
    )
    assert endpoints.prometheus_url(plain, "/-/ready") == "http://10.20.0.5:9090/-/ready"
    assert endpoints.exporter_credentials(plain) == endpoints.service_credentials(plain) == []


def test_only_the_tls_files_the_exporter_reads_restart_it(config: Config, pki: Pki):
    master = config.master
    files = {path: data for path, (data, _) in render_stack(config, pki).tls[master.name].items()}
    with_tls = exporter_inputs(config, files)
    assert exporter_inputs(config, {}) == exporter_inputs(config)  # TLS off: as before
    assert with_tls != exporter_inputs(config)
    for name, restarts in [("node.key", True), ("ca.crt", True), ("exporter-web.yml", True),
                           ("web.yml", False), ("prometheus-client.key", False),
                           ("web-password", False)]:  # fmt: skip
        changed = {**files, layout.tls_path(master, name): b"something else"}
        assert (exporter_inputs(config, changed) != with_tls) is restarts, name


def test_each_node_is_sent_its_own_files_keys_and_passwords_0600(config: Config, pki: Pki):
    rendered = render_stack(config, pki)
    assert set(rendered.tls) == {node.name for node in config.nodes}
    for node in config.nodes:
        files = rendered.tls[node.name]
        folder = layout.tls_dir(node)
        assert all(path.startswith(folder + "/") for path in files)
        names = {
            path.removeprefix(folder + "/"): octal_mode(mode) for path, (_, mode) in files.items()
        }
        expected = {"ca.crt": "644", "node.crt": "644", "node.key": "600",
                    "exporter-web.yml": "644"}  # fmt: skip
        if node.role == "master":
            expected |= {"prometheus-client.crt": "644", "prometheus-client.key": "600",
                         "web-password": "600", "web.yml": "600"}  # fmt: skip
        assert names == expected
        node_key = files[layout.tls_path(node, "node.key")][0]
        assert node_key == pki.node_key(node.name).read_bytes()
    assert render_stack(config).tls == {}  # without a PKI (TLS off) nothing is sent


def test_octal_mode_reads_numbers_and_strings():
    assert octal_mode(0o600) == "600" and octal_mode("0o644") == "644"
    assert octal_mode("700") == "700"
