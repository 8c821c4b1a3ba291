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
