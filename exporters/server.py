"""The HTTP side: `/metrics`, `/sd`, `/` and `/-/healthy` on the configured address only.

http.server rather than prometheus_client's own server: that one has no basic auth, no
cap on concurrent scrapes and no other routes. Like node_exporter, /metrics always answers
in the text format 0.0.4 (see exporters.exposition). TLS handshakes happen in the
connection's thread, so a slow client cannot stall the accept loop.
"""

from __future__ import annotations

import gzip
import html
import json
import logging
import socket
import socketserver
import ssl
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from minicluster.core import discovery
from minicluster.exporter.exposition import CONTENT_TYPE, TextEncoder
from minicluster.exporter.options import Options
from minicluster.exporter.scrape import ScrapeGuard
from minicluster.exporter.webconfig import BasicAuth

log = logging.getLogger("exporters")

HANDSHAKE_TIMEOUT_SECONDS = 10.0
# Prometheus keeps its connection open between scrapes; close it after a quiet minute.
IDLE_TIMEOUT_SECONDS = 60.0
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
# Leave Prometheus this much of its scrape timeout to receive the answer.
SCRAPE_TIMEOUT_MARGIN_SECONDS = 0.5


class ExporterServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops SYNs when a few scrapers connect at once,
    # and a dropped SYN costs the client a 1 s retransmit.
    request_queue_size = socket.SOMAXCONN

    def __init__(
        self,
        options: Options,
        guard: ScrapeGuard,
        tls: ssl.SSLContext | None = None,
        auth: BasicAuth | None = None,
    ):
        self.address_family = socket.AF_INET6 if ":" in options.listen_host else socket.AF_INET
        self.options, self.guard, self.tls, self.auth = options, guard, tls, auth
        self.scrape_slots = threading.BoundedSemaphore(options.max_concurrent_scrapes)
        self.encoder = TextEncoder()
        self._last_body: tuple[list, bool, bytes] | None = None
        super().__init__((options.listen_host, options.listen_port), Handler)

    def body(self, families: list, gzipped: bool) -> bytes:
        """The encoded (and maybe gzipped) scrape; scrapes that joined one collection get
        the bytes encoded once for it."""
        last = self._last_body
        if last is not None and last[0] is families and last[1] == gzipped:
            return last[2]
        body = self.encoder.encode(families)
        if gzipped:
            # Level 1: most of the size win for a fraction of the CPU of the default 9.
            body = gzip.compress(body, compresslevel=1)
        self._last_body = (families, gzipped, body)  # one tuple: replaced atomically
        return body

    def server_bind(self) -> None:
        # HTTPServer's version does a reverse DNS lookup of the address (socket.getfqdn),
        # which stalls start-up on a host without a resolver; the name is never used.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    def finish_request(self, request, client_address) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
        try:
            connection = self.tls.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address[0], exc)
            return
        try:
            self.RequestHandlerClass(connection, client_address, self)
        finally:
            connection.close()

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError, ssl.SSLError)):
            # The client went away mid-answer: its problem, not worth a traceback.
            log.debug("connection from %s ended: %s", client_address[0], error)
            return
        log.exception("error while answering %s", client_address[0])


class Handler(BaseHTTPRequestHandler):
    server: ExporterServer
    protocol_version = "HTTP/1.1"
    server_version = "minicluster-exporter"
    timeout = IDLE_TIMEOUT_SECONDS

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle holds the body until
        # the client's delayed ACK (40 ms) on a kept-alive connection, as Prometheus uses.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        if self.server.auth and not self.server.auth.check(self.headers.get("Authorization")):
            self._send(
                HTTPStatus.UNAUTHORIZED,
                b"Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="minicluster exporter"'},
            )
            return
        path = urlsplit(self.path).path
        route = {
            "/metrics": self._metrics,
            "/sd": self._sd,
            "/": self._landing,
            "/-/healthy": self._healthy,
        }.get(path)
        if route is None:
            self._send(HTTPStatus.NOT_FOUND, b"Not Found\n")
            return
        route()

    def _metrics(self) -> None:
        if not self.server.scrape_slots.acquire(blocking=False):
            limit = self.server.options.max_concurrent_scrapes
            message = f"Too many concurrent scrapes (limit {limit})\n"
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, message.encode())
            return
        try:
            families = self.server.guard.scrape(self._budget())
            gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
            body = self.server.body(families, gzipped)
        finally:
            self.server.scrape_slots.release()
        headers = {"Content-Encoding": "gzip"} if gzipped else {}
        self._send(HTTPStatus.OK, body, CONTENT_TYPE, headers)

    def _budget(self) -> float | None:
        value = self.headers.get(SCRAPE_TIMEOUT_HEADER)
        try:
            return float(value) - SCRAPE_TIMEOUT_MARGIN_SECONDS if value else None
        except ValueError:
            return None

    def _sd(self) -> None:
        entries = discovery.live_entries(self.server.options.run_dir)
        body = json.dumps(discovery.http_sd(entries)).encode()
        self._send(HTTPStatus.OK, body, "application/json")

    def _landing(self) -> None:
        node = html.escape(self.server.options.node)
        body = (
            "<!doctype html><html><head><title>minicluster exporter</title></head><body>"
            f"<h1>minicluster exporter on {node}</h1><ul>"
            '<li><a href="metrics">/metrics</a>: node metrics</li>'
            '<li><a href="sd">/sd</a>: trainer ranks on this node (Prometheus http_sd)</li>'
            '<li><a href="-/healthy">/-/healthy</a></li>'
            "</ul></body></html>\n"
        )
        self._send(HTTPStatus.OK, body.encode(), "text/html; charset=utf-8")

    def _healthy(self) -> None:
        self._send(HTTPStatus.OK, b"Healthy\n")

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        # One line per request would fill launchd's unrotated log; errors are logged.
        pass
