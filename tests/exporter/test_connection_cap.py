"""The connection cap with every slot busy: a new connection is closed at once, the
exporter logs one line for it and keeps answering once the slots free up."""

from __future__ import annotations

import socket

import requests

from tests.exporter.conftest import make_options
from tests.exporter.fakes import linux_sources
from tests.support import wait_until


def test_with_every_slot_busy_a_new_connection_is_closed_and_the_exporter_recovers(
    serve, tmp_path, caplog
):
    exporter = serve(make_options(tmp_path), sources=linux_sources(), platform="linux")
    exporter.max_connections = 4
    port = exporter.server_address[1]
    busy = []
    try:
        for _ in range(4):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET /metrics HTTP/1.1\r\n")  # headers never finished: not idle
            busy.append(sock)
        wait_until(
            lambda: sum(c.state == "headers" for c in list(exporter.connections.values())) == 4,
            "four connections reading headers",
        )
        with caplog.at_level("WARNING", logger="exporters"):
            for _ in range(3):
                extra = socket.create_connection(("127.0.0.1", port), timeout=10)
                extra.settimeout(5)
                assert extra.recv(1) == b""  # closed at once: no slot and none idle
                extra.close()
        refused = [r.getMessage() for r in caplog.records if "connection refused" in r.getMessage()]
        assert len(refused) == 1  # one line however many were refused
    finally:
        for sock in busy:
            sock.close()
    url = f"http://127.0.0.1:{port}/metrics"
    wait_until(lambda: requests.get(url, timeout=5).status_code == 200, "a scrape afterwards")
