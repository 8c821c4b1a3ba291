"""A rank's /metrics over mutual TLS, when the node's config says `security.tls: true`.

The rank serves with its node's certificate and answers only clients whose certificate
the cluster CA signed (Prometheus' scrape certificate, the operator's), TLS 1.2 or newer.

prometheus_client's start_http_server can serve TLS too, but it wraps the listening
socket, so every handshake runs in the one thread that accepts: a single connection that
never says hello stalls every scrape of the rank. Here the handshake runs in the
connection's own thread under a deadline, and a client that fails it (no certificate,
another CA, a port scanner) gets OpenSSL's alert and is closed, with nothing in the rank's
log: no traceback per request. The WSGI app that renders the registry is still
prometheus_client's.
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from minicluster.core.config import ConfigError

# Bounds the handshake and every later read or write of one connection: a scrape is a
# few kilobytes, and a client that trickles bytes must not hold a thread for long.
CONNECTION_SECONDS = 10.0
# Connections served at once; one more is closed as soon as it is accepted. Each holds a
# thread of the training process for up to CONNECTION_SECONDS, and a rank has one or two
# scrapers (Prometheus, `minicluster top`): anyone on the LAN opening thousands must not
# cost the training its memory or its threads.
MAX_CONNECTIONS = 32


@dataclass(frozen=True)
class TlsFiles:
    """The node's files that `make deploy` installs below <install_dir>/tls/."""

    ca: Path
    cert: Path
    key: Path


class TlsFileError(ConfigError):
    """A TLS file the rank cannot use: one line naming it (a ConfigError, so the trainer's
    entry point prints it as it prints any bad setting, and exits 2)."""

    def __init__(self, path: Path, reason: str):
        super().__init__(str(path), "", f"{reason}; `make deploy` installs it (security.tls is on)")


def _why(exc: ssl.SSLError) -> str:
    return exc.reason or exc.strerror or "unreadable"  # OpenSSL's words, e.g. KEY_VALUES_MISMATCH


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """The rank's server context; raises TlsFileError naming the first unusable file."""
    for path in (files.ca, files.cert, files.key):
        try:
            path.read_bytes()  # the ssl module's errors would not say which file
        except OSError as exc:
            raise TlsFileError(path, f"cannot read it ({exc.strerror or exc})") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_verify_locations(cafile=str(files.ca))
    except ssl.SSLError as exc:
        raise TlsFileError(files.ca, f"not a PEM certificate ({_why(exc)})") from None
    try:
        context.load_cert_chain(str(files.cert), str(files.key))
    except ssl.SSLError as exc:
        reason = f"not a PEM certificate matching {files.key} ({_why(exc)})"
        raise TlsFileError(files.cert, reason) from None
    return context


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # one access line per scrape would fill the rank's log


class _TlsServer(ThreadingWSGIServer):
    context: ssl.SSLContext
    slots: threading.BoundedSemaphore

    def process_request(self, request: socket.socket, client_address) -> None:
        # In the accepting thread: past the cap, closed before a thread is started for it.
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread took the slot (one could not be started)
            self.slots.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address) -> None:
        # Runs in the connection's thread (ThreadingMixIn), so a slow handshake holds
        # only this connection.
        try:
            try:
                request.settimeout(CONNECTION_SECONDS)
                secure = self.context.wrap_socket(request, server_side=True)
            except OSError:  # refused or too slow: the client learns it from the TLS alert
                self.shutdown_request(request)
                return
            super().process_request_thread(secure, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address) -> None:
        # A client that drops or stalls mid-request is not the rank's error; a bug is.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def serve(address: str, port: int, registry: CollectorRegistry, files: TlsFiles):
    """Serve `registry` on address:port (0: a free one) over mutual TLS, in a daemon
    thread; returns the server (`server_port`, `shutdown()`, `server_close()`)."""
    context = server_context(files)  # before binding: a bad file leaves no open port

    class Server(_TlsServer):
        pass

    family, *_ = socket.getaddrinfo(
        address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    Server.address_family = family  # an IPv6 training address needs an AF_INET6 socket
    Server.context = context
    Server.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    server = make_server(address, port, make_wsgi_app(registry), Server, _QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
