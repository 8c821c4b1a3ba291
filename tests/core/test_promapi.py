"""The one Prometheus client: instant and range queries, and which failure is which."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar
from urllib.parse import parse_qs

import pytest

from minicluster.core.promapi import Prometheus, PrometheusUnreachable, QueryFailed

VECTOR = {"resultType": "vector", "result": [{"metric": {"rank": "0"}, "value": [100.5, "7"]}]}
MATRIX = {
    "resultType": "matrix",
    "result": [
        {"metric": {"rank": "1"}, "values": [[10, "1"], [20, "NaN"], [30, "3"], [40, "NaN"]]}
    ],
}


class Api(BaseHTTPRequestHandler):
    forms: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        if not self.path.startswith("/api/"):
            return self.do_GET()
        length = int(self.headers["Content-Length"])
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        Api.forms.append({"path": self.path, **form})
        if form["query"] == "bad(":
            body = {"status": "error", "errorType": "bad_data", "error": "parse error"}
        elif self.path == "/api/v1/query_range":
            body = {"status": "success", "data": MATRIX}
        elif form["query"] == "scalar(1)":
            body = {"status": "success", "data": {"resultType": "scalar", "result": [1, "1"]}}
        else:
            body = {"status": "success", "data": VECTOR}
        raw = json.dumps(body).encode()
        self.send_response(200 if body["status"] == "success" else 400)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:  # not Prometheus: a plain page
        self.send_response(404)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"no")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def prom():
    server = HTTPServer(("127.0.0.1", 0), Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Api.forms = []
    client = Prometheus(f"http://127.0.0.1:{server.server_port}/")
    yield client
    client.close()
    server.shutdown()
    server.server_close()


def test_an_instant_query_at_a_time_gives_labels_and_value(prom):
    [series] = prom.query("up", at=1796137672.25)
    assert series.labels == {"rank": "0"} and series.value == 7.0 and series.times == [100.5]
    assert Api.forms[-1] == {"path": "/api/v1/query", "query": "up", "time": "1796137672.250"}
    prom.vector("up")
    assert "time" not in Api.forms[-1]  # Prometheus's own now


def test_a_range_query_keeps_nan_and_knows_its_last_finite_value(prom):
    [series] = prom.query_range("x", 10, 40, 10)
    assert series.times == [10, 20, 30, 40] and series.last == 3.0
    assert Api.forms[-1] == {
        "path": "/api/v1/query_range",
        "query": "x",
        "start": "10.000",
        "end": "40.000",
        "step": "10",
    }


def test_a_refused_query_is_query_failed_naming_it(prom):
    with pytest.raises(QueryFailed, match=r"query 'bad\(' failed: parse error"):
        prom.query("bad(")
    with pytest.raises(QueryFailed, match="returned a scalar, not a vector"):
        prom.query("scalar(1)")


def test_a_closed_port_is_unreachable_with_the_reason():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(PrometheusUnreachable) as caught:
        Prometheus(url).query("up")
    assert str(caught.value) == f"Prometheus at {url} is unreachable (connection refused)"


def test_a_server_that_is_not_prometheus_is_unreachable(prom):
    other = Prometheus(f"{prom.base_url}/elsewhere")
    with pytest.raises(PrometheusUnreachable) as caught:
        other.query("up")
    assert str(caught.value) == (
        f"Prometheus at {other.base_url} is unreachable (HTTP 404, not its API)"
    )
    assert not other.ready()


# --- the cluster's client: HTTPS, the cluster CA and the web user ----------------------------


def _tls_config(tmp_path, pki_dir: str = "pki", **security: object):
    """The local profile with TLS on and its PKI in tmp_path."""
    from minicluster.core.profiles import local_profile

    return local_profile(
        tmp_path / "state", security={"tls": True, "pki_dir": str(tmp_path / pki_dir), **security}
    )


class LoginApi(Api):
    """The Prometheus API behind basic auth, as Prometheus' web.yml sets it up."""

    expected: ClassVar[str] = ""
    seen: ClassVar[list[str | None]] = []

    def do_POST(self) -> None:
        LoginApi.seen.append(self.headers.get("Authorization"))
        if self.headers.get("Authorization") != LoginApi.expected:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(401)
            self.send_header("Content-Length", "12")
            self.end_headers()
            self.wfile.write(b"Unauthorized")
            return
        super().do_POST()


@pytest.fixture
def https_prometheus(tmp_path):
    """An HTTPS Prometheus API on 127.0.0.1 with mini-red's certificate from ensure_pki;
    yields (config, url)."""
    import base64
    import ssl

    from minicluster.security.pki import ensure_pki

    config = _tls_config(tmp_path)
    pki = ensure_pki(config)
    server = HTTPServer(("127.0.0.1", 0), LoginApi)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.node_cert("mini-red"), pki.node_key("mini-red"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    token = base64.b64encode(f"minicluster:{pki.password()}".encode()).decode()
    LoginApi.expected, LoginApi.seen, Api.forms = f"Basic {token}", [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield config, f"https://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def tmp_ca(config):
    from minicluster.security.pki import pki_paths

    return pki_paths(config).ca_cert


def test_the_cluster_client_logs_in_over_https_checking_the_cluster_ca(
    https_prometheus, monkeypatch
):
    import requests.certs

    from minicluster.core.promapi import prometheus_client_for

    config, url = https_prometheus
    # requests would let this replace a session's CA file: the client's must still win.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", requests.certs.where())
    client = prometheus_client_for(config, url_override=url, timeout=5.0)
    try:
        [series] = client.query("up")
    finally:
        client.close()
    assert series.value == 7.0
    assert LoginApi.seen == [LoginApi.expected]
    assert client.verify == str(tmp_ca(config))
    assert client.timeout == 5.0


def test_a_server_the_cluster_ca_did_not_sign_is_refused(https_prometheus, tmp_path):
    from minicluster.core.promapi import prometheus_client_for
    from minicluster.security.pki import ensure_pki

    _, url = https_prometheus
    # The same cluster name under another PKI folder: another CA.
    other = _tls_config(tmp_path, pki_dir="other-pki")
    ensure_pki(other)
    client = prometheus_client_for(other, url_override=url)
    with pytest.raises(PrometheusUnreachable) as caught:
        client.query("up")
    assert str(caught.value) == (
        f"Prometheus at {url} is unreachable (its certificate is not signed by the cluster CA)"
    )
    # Nothing was sent: the password never reached a server the CA does not vouch for.
    assert LoginApi.seen == []


def test_a_refused_password_says_so(https_prometheus):
    from minicluster.core.controlpki import pki_paths
    from minicluster.core.promapi import prometheus_client_for

    config, url = https_prometheus
    password = pki_paths(config).password_file
    password.write_text("not-the-password\n")
    with pytest.raises(PrometheusUnreachable) as caught:
        prometheus_client_for(config, url_override=url).query("up")
    assert str(caught.value) == (
        f"Prometheus at {url} is unreachable (HTTP 401: the web password was refused; "
        "`make deploy` installs the password this machine has)"
    )


def test_without_the_pki_files_the_client_says_to_deploy(tmp_path):
    from minicluster.core.config import ConfigError
    from minicluster.core.promapi import prometheus_client_for

    config = _tls_config(tmp_path)
    with pytest.raises(ConfigError) as caught:
        prometheus_client_for(config)
    root = tmp_path / "pki" / "local"
    assert str(caught.value) == (
        f"config: security.pki_dir: {root}/ca.crt is missing: run `make deploy`, which "
        f"creates the cluster's certificates and web password in {root}"
    )


def test_the_url_and_the_client_follow_security_tls(tmp_path):
    from minicluster.core.profiles import local_profile
    from minicluster.core.promapi import prometheus_client_for, prometheus_url

    plain = local_profile(tmp_path / "state")
    port = plain.prometheus.port
    assert prometheus_url(plain) == f"http://127.0.0.1:{port}"
    client = prometheus_client_for(plain)
    assert client.base_url == f"http://127.0.0.1:{port}"
    assert client.session.auth is None and client.verify is True
    secure = _tls_config(tmp_path)
    assert prometheus_url(secure) == f"https://127.0.0.1:{port}"
    # An http:// override gets no password: it would travel in clear.
    override = prometheus_client_for(secure, url_override="http://127.0.0.1:1")
    assert override.session.auth is None
    # No config, only a URL: a plain client.
    assert prometheus_client_for(None, url_override="https://127.0.0.1:1").session.auth is None


def test_an_operator_reads_with_its_own_certificate_checked_against_the_cluster_ca(tmp_path):
    from minicluster.core.controlpki import MissingCredentials, pki_paths
    from minicluster.security.pki import ensure_pki

    config = _tls_config(tmp_path)
    with pytest.raises(MissingCredentials) as missing:
        pki_paths(config).client_tls("operator")
    assert "run `make deploy`" in str(missing.value)
    pki = ensure_pki(config)
    assert pki.client_tls("operator") == {
        "cert": (str(pki.root / "clients/operator.crt"), str(pki.root / "clients/operator.key")),
        "verify": str(pki.root / "ca.crt"),
    }
