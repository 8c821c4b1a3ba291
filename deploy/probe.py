"""Small network probes run *on a node* (deploy's waits, doctor's checks).

Deploy and doctor send this file's source to a node's base interpreter (`python -c`), so
it works before the venv exists and when the venv is broken: standard library only, no
imports from the project. Each probe prints one JSON line and exits 0; the caller decides
what the result means.

    http URL [--wait SECONDS] [--auth USER:PASSWORD_FILE]
             [--ca CA_FILE] [--cert CERT_FILE --key KEY_FILE]
                                            https checks the server with CA_FILE and
                                            presents the client certificate when given
    connect HOST PORT [--timeout SECONDS]   -> {"result": "open"|"refused"|"timeout"|...}
    bind HOST PORT                          -> {"result": "free"|"in use"|...}
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def tls_context(ca: str | None, cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The client side of a TLS cluster: the cluster CA checks the server's certificate
    (and its name: the address in the URL), the client certificate proves who asks."""
    if ca is None and cert is None:
        return None
    context = ssl.create_default_context(cafile=ca)
    if cert:
        context.load_cert_chain(cert, key)
    return context


def http(url: str, wait: float, auth: str | None, context: ssl.SSLContext | None = None) -> dict:
    """GET `url`, retrying until it answers 200 or `wait` seconds have passed."""
    request = urllib.request.Request(url)
    if auth:
        user, _, password_file = auth.partition(":")
        password = Path(password_file).read_text().strip()
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    deadline = time.monotonic() + wait
    while True:
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as response:
                body = response.read(2_000_000).decode("utf-8", "replace")
                return {"status": response.status, "body": body,
                        "seconds": time.monotonic() - started}  # fmt: skip
        except urllib.error.HTTPError as exc:
            result = {"status": exc.code, "error": str(exc)}
        except (OSError, ValueError) as exc:
            result = {"status": None, "error": str(getattr(exc, "reason", exc))}
        if time.monotonic() >= deadline:
            return result
        time.sleep(0.2)


def connect(host: str, port: int, timeout: float) -> dict:
    """Whether a TCP connection gets through: refused still proves the path is open."""
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            result = "open"
    except ConnectionRefusedError:
        result = "refused"
    except TimeoutError:
        result = "timeout"
    except OSError as exc:
        result = f"error: {exc.strerror or exc}"
    return {"result": result, "seconds": time.monotonic() - started}


def bind(host: str, port: int) -> dict:
    """Whether this node could listen on host:port right now.

    Bound as the services bind (SO_REUSEADDR: the metrics server, torch's TCPStore), so the
    TIME_WAIT connections a finished job leaves for a minute do not count as "in use". BSD
    then lets a specific address bind beside a wildcard listener, so a listener is also
    looked for by connecting.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return {"result": "in use" if exc.errno in (48, 98) else f"error: {exc.strerror}"}
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        if sock.connect_ex((host, port)) == 0:
            return {"result": "in use"}
    return {"result": "free"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="probe")
    probes = parser.add_subparsers(dest="probe", required=True)
    p_http = probes.add_parser("http")
    p_http.add_argument("url")
    p_http.add_argument("--wait", type=float, default=0.0)
    p_http.add_argument("--auth", default=None)
    p_http.add_argument("--ca", default=None)
    p_http.add_argument("--cert", default=None)
    p_http.add_argument("--key", default=None)
    p_connect = probes.add_parser("connect")
    p_connect.add_argument("host")
    p_connect.add_argument("port", type=int)
    p_connect.add_argument("--timeout", type=float, default=2.0)
    p_bind = probes.add_parser("bind")
    p_bind.add_argument("host")
    p_bind.add_argument("port", type=int)
    args = parser.parse_args(argv)
    if args.probe == "http":
        try:
            context = tls_context(args.ca, args.cert, args.key)
        except (OSError, ssl.SSLError) as exc:  # a missing or unreadable file: no request
            result = {"status": None, "error": f"TLS files: {exc}"}
        else:
            result = http(args.url, args.wait, args.auth, context)
    elif args.probe == "connect":
        result = connect(args.host, args.port, args.timeout)
    else:
        result = bind(args.host, args.port)
    print(json.dumps(result))
    return 0


def remote_command(python: str, *args: str) -> str:
    """The shell command that runs this probe with `python` on a node."""
    import shlex  # only the control machine calls this

    source = Path(__file__).read_text()
    return " ".join(shlex.quote(part) for part in [python, "-c", source, *args])


if __name__ == "__main__":
    sys.exit(main())
