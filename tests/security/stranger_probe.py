"""What a stranger on the LAN gets from one port: run inside the stranger's namespace.

Standard library only, raw sockets: the stranger holds no CA and checks no certificate
(it would accept anything), and presents a client certificate only when given one.

    python stranger_probe.py '[{"host": ..., "port": ..., "method": "GET", "path": "/metrics",
                                "body": "", "headers": {}, "tls": true, "cert": null,
                                "key": null}, ...]'

prints one JSON list, an answer per request: {"status": HTTP status or null, "head": the
first bytes of the answer, "error": why there was no HTTP answer, or null}.
"""

from __future__ import annotations

import json
import socket
import ssl
import sys

TIMEOUT = 5.0
READ_LIMIT = 4096


def request_bytes(spec: dict) -> bytes:
    body = spec.get("body", "").encode()
    lines = [
        f"{spec.get('method', 'GET')} {spec.get('path', '/')} HTTP/1.1",
        f"Host: {spec['host']}:{spec['port']}",
        "Connection: close",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in spec.get("headers", {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_answer(sock) -> bytes:
    chunks, size = [], 0
    while size < READ_LIMIT:
        chunk = sock.recv(READ_LIMIT)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def probe(spec: dict) -> dict:
    try:
        raw = socket.create_connection((spec["host"], spec["port"]), timeout=TIMEOUT)
    except OSError as exc:
        return {"status": None, "head": "", "error": f"connect: {exc.strerror or exc}"}
    try:
        sock = raw
        if spec.get("tls"):
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # a stranger trusts any server
            if spec.get("cert"):
                context.load_cert_chain(spec["cert"], spec["key"])
            sock = context.wrap_socket(raw, server_hostname=spec["host"])
        sock.sendall(request_bytes(spec))
        answer = read_answer(sock)
    except (OSError, ssl.SSLError) as exc:
        return {"status": None, "head": "", "error": f"{type(exc).__name__}: {exc}"}
    finally:
        raw.close()
    head = answer[:300].decode("latin-1")
    status = None
    first = head.split("\r\n", 1)[0].split(" ")
    if len(first) >= 2 and first[0].startswith("HTTP/") and first[1].isdigit():
        status = int(first[1])
    error = None if status is not None else "no HTTP answer"
    return {"status": status, "head": head, "error": error}


if __name__ == "__main__":
    print(json.dumps([probe(spec) for spec in json.loads(sys.argv[1])]))
