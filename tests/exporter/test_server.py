"""The HTTP side: endpoints, /sd, binding, TLS and basic auth."""

from __future__ import annotations

import base64
import gzip
import json
import os
import socket
import subprocess

import bcrypt
import pytest
import requests

from minicluster.core import discovery
from minicluster.core.config import ConfigError
from minicluster.exporter import webconfig
from minicluster.exporter.webconfig import BasicAuth, load_web_config
from tests.exporter.conftest import get, make_options, samples, value
from tests.exporter.fakes import linux_sources
from tests.support import free_port, require_tool


@pytest.fixture
def fixture_server(serve, tmp_path):
    return serve(make_options(tmp_path), sources=linux_sources(), platform="linux")


def test_metrics_endpoint_serves_text_format(fixture_server):
    response = get(fixture_server.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert value(response.text, "node_load1") == 0.52


def test_gzip_when_asked(fixture_server):
    raw = requests.get(
        fixture_server.url + "/metrics", headers={"Accept-Encoding": "gzip"}, stream=True
    )
    assert raw.headers["Content-Encoding"] == "gzip"
    compressed = raw.raw.read()
    # Any gzip reader takes it (Prometheus' is Go's; this is zlib's), and it says what the
    # plain answer says.
    text = gzip.decompress(compressed).decode()
    plain = get(fixture_server.url + "/metrics").text
    timing = "node_scrape_collector_duration_seconds"
    assert {k: v for k, v in samples(text).items() if k[0] != timing} == {
        k: v for k, v in samples(plain).items() if k[0] != timing
    }
    assert value(text, "node_load1") == 0.52
    assert len(compressed) < len(text) / 3


def test_landing_health_and_404(fixture_server):
    landing = get(fixture_server.url + "/")
    assert landing.status_code == 200 and "mini-red" in landing.text
    assert 'href="metrics"' in landing.text and 'href="sd"' in landing.text
    assert get(fixture_server.url + "/-/healthy").text == "Healthy\n"
    assert get(fixture_server.url + "/nope").status_code == 404


def test_sd_lists_live_ranks_and_drops_dead_ones(fixture_server, tmp_path):
    run_dir = tmp_path / "run"
    alive = discovery.RankEntry("job-7", 1, 1, "mini-red", "127.0.0.1:9401", os.getpid())
    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid now belongs to no process
    dead = discovery.RankEntry("job-6", 0, 0, "mini-red", "127.0.0.1:9400", finished.pid)
    discovery.register(run_dir, alive)
    dead_file = discovery.register(run_dir, dead)
    response = get(fixture_server.url + "/sd")
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == [
        {
            "targets": ["127.0.0.1:9401"],
            "labels": {"job_id": "job-7", "rank": "1", "local_rank": "1", "node": "mini-red"},
        }
    ]
    assert not dead_file.exists()


def test_sd_with_no_run_dir_is_empty(serve, tmp_path):
    server = serve(make_options(tmp_path, run_dir=str(tmp_path / "absent")), linux_sources())
    assert get(server.url + "/sd").json() == []


def test_binds_only_the_configured_address(serve, tmp_path):
    port = free_port("127.0.0.2")
    serve(make_options(tmp_path, listen_host="127.0.0.2", listen_port=port), linux_sources())
    assert get(f"http://127.0.0.2:{port}/-/healthy").status_code == 200
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 2):
        pass


# --- TLS and basic auth -----------------------------------------------------------------


def self_signed(directory, name: str) -> tuple[str, str]:
    openssl = require_tool("openssl", "apt-get install openssl")
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-nodes", "-days", "1"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-keyout", str(key), "-out", str(cert)),
            *("-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    key.chmod(0o600)
    return str(cert), str(key)


def hashed(password: str, prefix: str = "$2b$") -> str:
    # Cost 4 keeps the test fast; htpasswd writes $2y$, the same algorithm.
    return prefix + bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()[4:]


@pytest.fixture
def secured(serve, tmp_path):
    cert, _ = self_signed(tmp_path, "server")
    config = tmp_path / "web.yml"
    config.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "basic_auth_users:\n"
        f"  prometheus: {hashed('s3cret')}\n"
        f"  grafana: '{hashed('other', '$2y$')}'\n"
    )
    tls, auth = load_web_config(config)
    server = serve(make_options(tmp_path), linux_sources(), "linux", tls, auth)
    return server.url, cert


def test_tls_with_good_credentials(secured):
    url, cert = secured
    assert url.startswith("https://")
    response = get(url + "/metrics", auth=("prometheus", "s3cret"), verify=cert)
    assert response.status_code == 200 and value(response.text, "node_load5") == 0.61
    assert get(url + "/sd", auth=("grafana", "other"), verify=cert).status_code == 200


@pytest.mark.parametrize(
    "auth", [None, ("prometheus", "wrong"), ("nobody", "s3cret"), ("prometheus", "")]
)
def test_bad_or_missing_credentials_get_401(secured, auth):
    url, cert = secured
    for path in ["/metrics", "/sd", "/", "/-/healthy"]:
        response = get(url + path, auth=auth, verify=cert)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic")
        assert "node_" not in response.text


def test_malformed_authorization_header_gets_401(secured):
    url, cert = secured
    for header in ["Basic !!!", "Basic " + "cHJvbWV0aGV1cw==", "Bearer abc"]:
        response = get(url + "/metrics", headers={"Authorization": header}, verify=cert)
        assert response.status_code == 401


def test_plain_http_to_a_tls_port_gets_no_metrics(secured):
    url, _ = secured
    with pytest.raises(requests.ConnectionError):
        get(url.replace("https://", "http://") + "/metrics", auth=("prometheus", "s3cret"))


def test_server_certificate_is_verified(secured, tmp_path):
    url, _ = secured
    other, _ = self_signed(tmp_path, "impostor")
    with pytest.raises(requests.exceptions.SSLError):
        get(url + "/metrics", auth=("prometheus", "s3cret"), verify=other)


def test_client_certificates_when_required(serve, tmp_path):
    self_signed(tmp_path, "server")
    client_cert, client_key = self_signed(tmp_path, "client")
    config = tmp_path / "web.yml"
    config.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client.crt\n"
    )
    tls, auth = load_web_config(config)
    server = serve(make_options(tmp_path), linux_sources(), "linux", tls, auth)
    ca = str(tmp_path / "server.crt")
    ok = get(server.url + "/metrics", verify=ca, cert=(client_cert, client_key))
    assert ok.status_code == 200
    with pytest.raises(requests.exceptions.RequestException):
        get(server.url + "/metrics", verify=ca)


def test_credentials_are_checked_once_then_cached(monkeypatch):
    calls = []
    real = bcrypt.checkpw
    monkeypatch.setattr(webconfig.bcrypt, "checkpw", lambda p, h: calls.append(1) or real(p, h))
    auth = BasicAuth({"prometheus": hashed("s3cret")})
    good = "Basic " + base64.b64encode(b"prometheus:s3cret").decode()
    assert all(auth.check(good) for _ in range(5))
    assert len(calls) == 1
    bad = "Basic " + base64.b64encode(b"ghost:s3cret").decode()
    assert not auth.check(bad)
    assert len(calls) == 2  # unknown users still cost a bcrypt check (no timing oracle)


@pytest.mark.parametrize(
    "text, where",
    [
        ("basic_auth_users:\n  p: plaintext\n", "basic_auth_users.p"),
        ("tls_server_config:\n  cert_file: x.crt\n  key_file: x.key\n", "tls_server_config"),
        ("http_server_config:\n  http2: true\n", "http_server_config"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  ciphers: [x]\n", "ciphers"),
    ],
)
def test_web_config_errors_name_the_key(tmp_path, text, where):
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_web_config(path)
    assert str(error.value).startswith(str(path)) and where in str(error.value)


def test_web_config_client_auth_needs_a_ca(tmp_path):
    self_signed(tmp_path, "server")
    path = tmp_path / "web.yml"
    path.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
    )
    with pytest.raises(ConfigError, match="client_ca_file"):
        load_web_config(path)


def test_sd_body_is_what_prometheus_http_sd_expects(fixture_server, tmp_path):
    discovery.register(
        tmp_path / "run",
        discovery.RankEntry("j", 0, 0, "mini-red", "127.0.0.1:9400", os.getpid()),
    )
    body = json.loads(get(fixture_server.url + "/sd").content)
    assert isinstance(body, list)
    for group in body:
        assert set(group) == {"targets", "labels"}
        assert all(isinstance(v, str) for v in group["labels"].values())
