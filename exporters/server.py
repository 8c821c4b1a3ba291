"""The HTTP side: `/metrics`, `/sd`, `/` and `/-/healthy` on the configured address only.

http.server rather than prometheus_client's own server: that one has no basic auth, no
cap on concurrent scrapes and no other routes. Like node_exporter, /metrics always answers
in the text format 0.0.4 (see exporters.exposition). TLS handshakes happen in the
connection's thread, so a slow client cannot stall the accept loop.
"""

from __future__ import annotations

import contextlib
import gc
import html
import json
import logging
import os
import resource
import socket
import socketserver
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from isal import igzip

from minicluster.core import discovery
from minicluster.exporter.collectors.heldfiles import held_files_budget
from minicluster.exporter.exposition import CONTENT_TYPE, TextEncoder
from minicluster.exporter.options import Options
from minicluster.exporter.scrape import ScrapeGuard
from minicluster.exporter.webconfig import BasicAuth

log = logging.getLogger("exporters")

HANDSHAKE_TIMEOUT_SECONDS = 10.0
# Prometheus keeps its connection open between scrapes; close it after a quiet minute.
IDLE_TIMEOUT_SECONDS = 60.0
# From a request's first byte to the end of its headers; a slow drip is closed after this.
HEADER_TIMEOUT_SECONDS = 10.0
MAX_CONNECTIONS = 256
# File descriptors kept free of connections for collectors, the textfile directory and logs.
FD_RESERVE = 16
ERROR_LOG_INTERVAL_SECONDS = 60.0
FAILED_AUTH_DELAY_SECONDS = 0.5
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
# Leave Prometheus this much of its scrape timeout to receive the answer.
SCRAPE_TIMEOUT_MARGIN_SECONDS = 0.5
GC_THRESHOLD = 20_000


@dataclass(eq=False)
class Connection:
    """One open client connection: what it is doing and since when."""

    sock: socket.socket
    state: str = "idle"  # idle: waiting for a request; headers: reading one; busy: answering
    since: float = field(default_factory=time.monotonic)
    dropped: bool = False
    # Made an authorized request: dropped only after every untrusted idle connection.
    trusted: bool = False

    def mark(self, state: str) -> None:
        self.since, self.state = time.monotonic(), state

    def drop(self) -> None:
        """Wake the connection's thread with end-of-file; that thread closes the socket."""
        self.dropped = True
        # socket.socket's own shutdown, also for an SSLSocket: no TLS close_notify from
        # this thread while the connection's thread may be using the TLS state.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)


def tune_gc() -> None:
    """Call once start-up is done, before serving.

    What start-up built (the config model, collectors, caches: most of the heap) lives as
    long as the process; frozen, the cycle collector no longer walks it. A scrape briefly
    holds a few thousand container objects and frees them by reference counting, so the
    default first threshold (700) ran the collector several times per scrape for nothing;
    at GC_THRESHOLD it runs about once every few scrapes (end to end: 5% less per scrape).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def connection_cap(limit: int = MAX_CONNECTIONS) -> int:
    """At most `limit` connections, fewer when the open-file limit would run out first:
    past it accept() fails and no scrape gets through at all."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return limit
    try:
        in_use = len(os.listdir("/dev/fd"))
    except OSError:
        in_use = 16
    # The collectors keep up to held_files_budget() kernel files open between scrapes.
    return max(4, min(limit, soft - in_use - FD_RESERVE - held_files_budget()))


class ErrorLog:
    """One line per kind of error and at most one a minute per kind, never a traceback:
    anyone who can connect can cause errors, and launchd's log is not rotated by itself."""

    def __init__(self, interval: float = ERROR_LOG_INTERVAL_SECONDS):
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def report(self, kind: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.interval:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            self._last[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        log.warning("%s: %s%s", kind, message, more)


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
        self.max_connections = connection_cap()
        self.connections: dict[socket.socket, Connection] = {}
        self._connections_lock = threading.Lock()
        self._current = threading.local()
        self.errors = ErrorLog()
        super().__init__((options.listen_host, options.listen_port), Handler)
        threading.Thread(target=self._reap, name="reaper", daemon=True).start()

    def process_request(self, request, client_address) -> None:
        """Admit a new connection: past the cap the longest-idle one is dropped for it (one
        that never made an authorized request first, so a flood of fresh connections does
        not push out Prometheus' kept-alive one); with none idle the new one is closed, so
        open files never run out."""
        with self._connections_lock:
            admitted = len(self.connections) < self.max_connections
            if not admitted:
                idle = [c for c in self.connections.values() if c.state == "idle" and not c.dropped]
                if idle:
                    min(idle, key=lambda c: (c.trusted, c.since)).drop()
                    admitted = True
            if admitted:
                self.connections[request] = Connection(request)
        if not admitted:
            self.errors.report("connection refused", "every connection slot is busy")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._connections_lock:
            self.connections.pop(request, None)
        super().shutdown_request(request)

    def _reap(self) -> None:
        """Close connections idle longer than IDLE_TIMEOUT_SECONDS or stuck in their headers
        longer than HEADER_TIMEOUT_SECONDS (a socket timeout restarts with every byte)."""
        limits = {"idle": IDLE_TIMEOUT_SECONDS, "headers": HEADER_TIMEOUT_SECONDS}
        while True:
            time.sleep(1.0)
            now = time.monotonic()
            with self._connections_lock:
                for connection in self.connections.values():
                    limit = limits.get(connection.state)
                    if limit is not None and now - connection.since > limit:
                        connection.drop()

    def current_connection(self) -> Connection | None:
        return getattr(self._current, "connection", None)

    def body(self, families: list, gzipped: bool) -> bytes:
        """The encoded (and maybe gzipped) scrape; scrapes that joined one collection get
        the bytes encoded once for it."""
        last = self._last_body
        if last is not None and last[0] is families and last[1] == gzipped:
            return last[2]
        body = self.encoder.encode(families)
        if gzipped:
            # ISA-L's gzip, not the standard library's zlib: on a 53 KB scrape, level 1
            # took 40-46 us against zlib's 125-210 us (zlib's 256 KB of state is cold
            # again at every scrape) and gave a smaller answer (9.8 KB against 10.1 KB).
            body = igzip.compress(body, compresslevel=1)
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
        with self._connections_lock:
            record = self.connections.get(request)
        self._current.connection = record
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
        try:
            connection = self.tls.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address[0], exc)
            return
        if record is not None:
            with self._connections_lock:
                # wrap_socket detached `request`: shutting down means the TLS socket now.
                record.sock = connection
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
        # Anyone who can connect can cause this: one line per kind, no traceback.
        kind = type(error).__name__ if error else "error"
        self.errors.report(kind, f"while answering {client_address[0]}: {error}")


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
        self.tracked = self.server.current_connection()

    def handle_one_request(self) -> None:
        tracked = self.tracked
        if tracked is None:
            super().handle_one_request()
            return
        tracked.mark("idle")
        try:
            first = self.rfile.peek(1)  # waits for the request's first byte
        except (OSError, ValueError):
            first = b""
        if not first or tracked.dropped:
            self.close_connection = True
            return
        tracked.mark("headers")
        super().handle_one_request()

    def parse_request(self) -> bool:
        parsed = super().parse_request()  # reads the headers
        if self.tracked is not None:
            self.tracked.mark("busy")
        return parsed

    def do_GET(self) -> None:
        auth = self.server.auth
        verdict = auth.verdict(self.headers.get("Authorization")) if auth else "ok"
        if verdict != "ok":
            # A refused request waits before its answer, asleep and so off the GIL: a
            # client looping on wrong passwords then sends a few a second, not thousands,
            # and cannot starve the threads answering scrapes. A scraper with the right
            # password never waits here.
            time.sleep(FAILED_AUTH_DELAY_SECONDS)
        if verdict == "busy":
            # Every hashing slot is taken by unchecked passwords: answer, do not queue.
            self._send(
                HTTPStatus.TOO_MANY_REQUESTS,
                b"Too many password checks\n",
                headers={"Retry-After": "1"},
            )
            return
        if verdict != "ok":
            self._send(
                HTTPStatus.UNAUTHORIZED,
                b"Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="minicluster exporter"'},
            )
            return
        if self.tracked is not None:
            self.tracked.trusted = True
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
        # end_headers() would write the headers on their own: with the body in the same
        # write, the client wakes once per answer instead of twice (a context switch each
        # way on a busy machine, and a second TLS record).
        head = b""
        if self.request_version != "HTTP/0.9":  # HTTP/0.9 answers have no headers
            head = b"".join(self._headers_buffer) + b"\r\n"
            self._headers_buffer = []
        self.wfile.write(head + body)

    def log_message(self, format: str, *args) -> None:
        # One line per request would fill launchd's unrotated log; errors are logged.
        pass
