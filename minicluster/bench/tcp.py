"""Raw TCP throughput over one link, the yardstick for the all-reduce bus bandwidth.

Why our own loop rather than iperf3: iperf3 is one more package to install on every Mac
and CI box, while what the bench needs is small and known: one stream, one direction,
bytes counted by the receiver over a bounded time, with the same socket API gloo uses.
The sender writes 1 MiB buffers for `seconds`; the receiver counts what arrived between
its first byte and the end of the stream.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from dataclasses import dataclass

CHUNK = 1 << 20


@dataclass(frozen=True)
class TcpResult:
    address: str
    bytes: int
    seconds: float

    @property
    def bytes_per_second(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


def _receive(server: socket.socket, result: dict) -> None:
    connection, _ = server.accept()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    total, first = 0, None
    with connection:
        while True:
            count = connection.recv_into(view)
            if not count:
                break
            if first is None:
                first = time.perf_counter()
            total += count
    result["bytes"] = total
    result["seconds"] = time.perf_counter() - first if first is not None else 0.0


def _send(address: str, port: int, seconds: float) -> None:
    payload = bytes(CHUNK)
    with socket.create_connection((address, port), timeout=10) as sender:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            sender.sendall(payload)


def measure(address: str = "127.0.0.1", seconds: float = 1.0) -> TcpResult:
    """Send for `seconds` from this process to a receiver bound on `address`.

    Both ends are threads of this process: socket send and receive release the GIL, so
    the Python overhead is one call per MiB.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    result: dict = {}
    with socket.socket(family, socket.SOCK_STREAM) as server:
        server.bind((address, 0))
        server.listen(1)
        port = server.getsockname()[1]
        receiver = threading.Thread(target=_receive, args=(server, result), daemon=True)
        receiver.start()
        _send(address, port, seconds)
        receiver.join(timeout=30)
    if "bytes" not in result:
        raise RuntimeError(f"TCP receiver on {address} did not finish")
    return TcpResult(address, result["bytes"], result["seconds"])


# Between two nodes: `serve` on the receiving node prints `tcp-listening <port>`, then one
# `tcp-result <json>` line once the sender has finished; `send` runs on the other node.
LISTENING = "tcp-listening "
RESULT = "tcp-result "


def serve(address: str, accept_timeout: float = 60.0) -> TcpResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    result: dict = {}
    with socket.socket(family, socket.SOCK_STREAM) as server:
        server.bind((address, 0))
        server.listen(1)
        server.settimeout(accept_timeout)
        print(f"{LISTENING}{server.getsockname()[1]}", flush=True)
        _receive(server, result)
    measured = TcpResult(address, result["bytes"], result["seconds"])
    print(
        RESULT
        + json.dumps({"address": address, "bytes": measured.bytes, "seconds": measured.seconds}),
        flush=True,
    )
    return measured


def parse_result(lines: list[str]) -> TcpResult | None:
    for text in lines:
        at = text.find(RESULT)
        if at >= 0:
            data = json.loads(text[at + len(RESULT) :])
            return TcpResult(data["address"], data["bytes"], data["seconds"])
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minicluster.bench.tcp")
    sub = parser.add_subparsers(dest="mode", required=True)
    listen = sub.add_parser("serve", help="receive one stream on ADDRESS, print its rate")
    listen.add_argument("address")
    send = sub.add_parser("send", help="send to ADDRESS PORT for --seconds")
    send.add_argument("address")
    send.add_argument("port", type=int)
    send.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.mode == "serve":
        serve(args.address)
    else:
        _send(args.address, args.port, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
