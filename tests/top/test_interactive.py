"""The live view in a real terminal (tmux): it says Prometheus is unreachable and keeps
retrying, draws the figures once Prometheus answers, redraws every interval, fits a
resized window, and quits on `q` with the terminal given back.

Prometheus here is a stand-in on a loopback port that answers every query of a frame with
the recorded live-stack answers (fixtures/live_answers.json), so the test needs no stack.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from minicluster.top.queries import queries
from tests.support import free_port, require_tool, wait_until

pytestmark = pytest.mark.integration

ANSWERS = json.loads((Path(__file__).parent / "fixtures" / "live_answers.json").read_text())
BY_EXPR = {expr: ANSWERS["answers"][name] for name, expr in queries("1m").items()}


class StandIn:
    """Answers /api/v1/query like Prometheus, from the recording."""

    def __init__(self, port: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                result = BY_EXPR.get(form["query"][0])
                body = (
                    {"status": "success", "data": {"resultType": "vector", "result": result}}
                    if result is not None
                    else {"status": "error", "error": "unknown query"}
                )
                data = json.dumps(body).encode()
                self.send_response(200 if result is not None else 400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Tmux:
    def __init__(self, tmp: Path) -> None:
        self.tmux = require_tool("tmux", "apt-get install tmux (Homebrew: tmux)")
        self.socket = str(tmp / "tmux.sock")

    def __call__(self, *args: str) -> str:
        return subprocess.run(
            [self.tmux, "-S", self.socket, *args], check=True, capture_output=True, text=True
        ).stdout

    def screen(self) -> list[str]:
        return self("capture-pane", "-p", "-t", "top").rstrip("\n").split("\n")

    def close(self) -> None:
        subprocess.run([self.tmux, "-S", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def tmux(tmp_path):
    session = Tmux(tmp_path)
    yield session
    session.close()


def _title(screen: list[str]) -> str:
    return next(line for line in screen if line.startswith("minicluster top"))


def test_live_view_retries_redraws_resizes_and_quits_on_q(tmux, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = ["-m", "minicluster", "top", "--local", "--prometheus", url, "--interval", "1"]
    top = shlex.join([sys.executable, *command])
    # The terminal's size is the pane's: a COLUMNS or LINES inherited from the test run
    # would pin it.
    tmux(
        "new-session", "-d", "-s", "top", "-x", "80", "-y", "24",
        f"cd {shlex.quote(os.getcwd())}; env -u COLUMNS -u LINES {top};"
        " echo top-exited=$?; sleep 60",
    )  # fmt: skip
    unreachable = f"Prometheus at {url} is unreachable (connection refused)"
    wait_until(
        lambda: any(line.startswith(unreachable) for line in tmux.screen()),
        "the unreachable line",
        timeout=60,
    )
    assert "retrying every 1s" in tmux.screen()

    stand_in = StandIn(port)
    try:
        first = wait_until(
            lambda: (s := tmux.screen()) and any(ln.startswith("mini-yellow") for ln in s) and s,
            "the node rows once Prometheus answers",
            timeout=60,
        )
        assert not any("unreachable" in line for line in first)
        assert len(first) <= 24 and all(len(line) <= 80 for line in first)
        assert first[1].split() == list(
            ("NODE", "EXP", "CPU", "MEM", "PRES", "GPU", "RX/s", "TX/s", "LINK", "UTIL", "RTT")
        )
        assert any(line.startswith("job live-4339") for line in first)
        assert "alerts: none firing  alerting pipeline alive" in first

        # Redraws: the frame's clock moves on every refresh.
        wait_until(lambda: _title(tmux.screen()) != _title(first), "a redraw", timeout=30)

        tmux("resize-window", "-t", "top", "-x", "56", "-y", "12")
        narrow = wait_until(
            lambda: (s := tmux.screen()) and s[1].startswith("NODE") and "UTIL" not in s[1] and s,
            "a frame for 56x12",
            timeout=30,
        )
        assert len(narrow) <= 12 and all(len(line) <= 56 for line in narrow)
        assert any(line.startswith("mini-red") for line in narrow)

        tmux("send-keys", "-t", "top", "q")
        after = wait_until(
            lambda: (s := tmux.screen()) and any("top-exited=" in ln for ln in s) and s,
            "top to exit on q",
            timeout=30,
        )
        assert any("top-exited=0" in line for line in after)
        # The alternate screen is left: the frame is gone from the shell's screen.
        assert not any(line.startswith("NODE") for line in after)
    finally:
        stand_in.close()
