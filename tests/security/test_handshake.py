"""A real TLS handshake on loopback with the cluster's certificates: a server holding a
node certificate accepts Prometheus' client certificate and refuses a client without
one, or with one from another CA."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from minicluster.security import certs
from minicluster.security.pki import Pki

TIMEOUT = 30.0


class MutualTlsServer:
    """Accepts connections one by one; records each handshake's outcome (peer CN or error)."""

    def __init__(self, pki: Pki, node: str):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(pki.node_cert(node), pki.node_key(node))
        self.context.load_verify_locations(pki.ca_cert)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.outcomes: list[str] = []
        self.stopping = threading.Event()
        self.handled = threading.Semaphore(0)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            if self.stopping.is_set():
                raw.close()
                return
            raw.settimeout(TIMEOUT)
            try:
                with self.context.wrap_socket(raw, server_side=True) as tls:
                    subject = dict(part[0] for part in tls.getpeercert()["subject"])
                    self.outcomes.append(f"peer {subject['commonName']}")
                    tls.sendall(b"hello " + subject["commonName"].encode())
            except (ssl.SSLError, OSError) as exc:
                self.outcomes.append(f"refused {exc}")
            finally:
                raw.close()
                self.handled.release()

    def next_outcome(self) -> str:
        assert self.handled.acquire(timeout=TIMEOUT), "the server handled no connection"
        return self.outcomes[-1]

    def close(self) -> None:
        # Closing the listener does not wake a blocked accept() everywhere; a connection does.
        self.stopping.set()
        socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT).close()
        self.thread.join(TIMEOUT)
        self.listener.close()
        assert not self.thread.is_alive()


@pytest.fixture
def server(pki: Pki) -> Iterator[MutualTlsServer]:
    # mini-blue's address is 127.0.0.1: its certificate names 127.0.0.1 and localhost.
    running = MutualTlsServer(pki, "mini-blue")
    yield running
    running.close()


def client_context(pki: Pki, cert: Path | None = None, key: Path | None = None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the server and its name
    context.load_verify_locations(pki.ca_cert)
    if cert:
        context.load_cert_chain(cert, key)
    return context


def exchange(context: ssl.SSLContext, port: int, server_name: str) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        return tls.recv(100)


@pytest.mark.parametrize("server_name", ["127.0.0.1", "localhost", "mini-blue"])
def test_prometheus_client_certificate_is_accepted(pki, server, server_name):
    context = client_context(pki, pki.client_cert("prometheus"), pki.client_key("prometheus"))
    assert exchange(context, server.port, server_name) == b"hello prometheus"
    assert server.next_outcome() == "peer prometheus"


def test_operator_client_certificate_is_accepted(pki, server):
    context = client_context(pki, pki.client_cert("operator"), pki.client_key("operator"))
    assert exchange(context, server.port, "127.0.0.1") == b"hello minicluster-operator"
    assert server.next_outcome() == "peer minicluster-operator"


def test_a_client_without_a_certificate_is_refused(pki, server):
    # With TLS 1.3 the client learns of the refusal on its first read.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        assert exchange(client_context(pki), server.port, "127.0.0.1") == b""
    outcome = server.next_outcome()
    assert outcome.startswith("refused") and "certificate" in outcome, outcome


def test_a_client_certificate_from_another_ca_is_refused(tmp_path, pki, server):
    now = dt.datetime.now(dt.UTC)
    stranger_ca_key = certs.new_key()
    stranger_ca = certs.issue_ca(stranger_ca_key, "lab", now)
    key = certs.new_key()
    cert = certs.issue_leaf(stranger_ca, stranger_ca_key, key, "prometheus", certs.CLIENT, [], now)
    (tmp_path / "stranger.crt").write_bytes(certs.cert_pem(cert))
    (tmp_path / "stranger.key").write_bytes(certs.key_pem(key))
    context = client_context(pki, tmp_path / "stranger.crt", tmp_path / "stranger.key")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        assert exchange(context, server.port, "127.0.0.1") == b""
    outcome = server.next_outcome()
    assert outcome.startswith("refused") and "certificate verify failed" in outcome, outcome


def test_a_server_name_the_certificate_does_not_carry_is_refused_by_the_client(pki, server):
    context = client_context(pki, pki.client_cert("prometheus"), pki.client_key("prometheus"))
    with pytest.raises(ssl.SSLCertVerificationError, match="mini-red"):
        exchange(context, server.port, "mini-red")
    assert server.next_outcome().startswith("refused")


def test_a_node_certificate_is_refused_as_a_client(pki, server):
    """A node's certificate only serves: whoever holds a Mini's key cannot scrape with it."""
    context = client_context(pki, pki.node_cert("mini-red"), pki.node_key("mini-red"))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        assert exchange(context, server.port, "127.0.0.1") == b""
    outcome = server.next_outcome()
    assert outcome.startswith("refused") and "unsuitable certificate purpose" in outcome, outcome
