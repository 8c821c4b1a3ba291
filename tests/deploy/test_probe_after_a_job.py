"""The doctor's port probe right after a job: the connections the job's servers closed wait
in TIME_WAIT for a minute, and the port is still free for the next job's servers (they bind
with SO_REUSEADDR), so the probe says "free"; a listener still says "in use"."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from minicluster.deploy.probe import remote_command


def probe_bind(port: int) -> str:
    command = remote_command(sys.executable, "bind", "127.0.0.1", str(port))
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"}).stdout  # fmt: skip
    return json.loads(out)["result"]


def time_wait_port() -> int:
    """A port whose server accepted a connection and closed it first, then stopped."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server side closes first: it holds the TIME_WAIT
            client.recv(1)
    return port


def test_a_port_in_time_wait_is_free_and_a_listening_one_is_in_use():
    port = time_wait_port()
    with socket.socket() as plain:  # what the probe used to do: refused for a minute
        try:
            plain.bind(("127.0.0.1", port))
            plain_result = "free"
        except OSError:
            plain_result = "in use"
    assert plain_result == "in use"  # the TIME_WAIT is really there
    assert probe_bind(port) == "free"
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert probe_bind(port) == "in use"
