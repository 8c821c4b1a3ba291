"""The exporter under hostile clients: long passwords, broken hashes, floods of wrong
passwords and of idle connections. Each runs the exporter as its own process on loopback."""

from __future__ import annotations

import base64
import http.client
import resource
import socket
import statistics
import subprocess
import sys
import textwrap
import time

import bcrypt
import pytest

from minicluster.exporter import server as server_module
from tests.exporter.conftest import make_options
from tests.exporter.fakes import linux_sources
from tests.support import wait_until

pytestmark = pytest.mark.integration

USER, PASSWORD = "prometheus", "scrape-secret"
BAD_CLIENTS = 200
GOOD_SCRAPES = 60
FLOOD_SECONDS = 3.0
EXPORTER = [sys.executable, "-m", "minicluster.exporter"]


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def web_config(tmp_path):
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  {USER}: '{hashed}'\n")
    return path


def start(tmp_path, *args: str, nofile: int | None = None) -> tuple[subprocess.Popen, int]:
    def limit_files():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    process = subprocess.Popen(
        [*EXPORTER, "--listen", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        preexec_fn=limit_files,
    )
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        pytest.fail(f"exporter did not start: {line}{process.stderr.read()}")
    return process, int(line.rsplit(":", 1)[1])


@pytest.fixture
def exporter(tmp_path):
    started: list[subprocess.Popen] = []

    def run(*args: str, nofile: int | None = None) -> tuple[subprocess.Popen, int]:
        process, port = start(tmp_path, *args, nofile=nofile)
        started.append(process)
        return process, port

    yield run
    for process in started:
        if process.poll() is None:
            process.terminate()
            process.wait(10)


def stop_and_read_log(process: subprocess.Popen) -> str:
    process.terminate()
    _, err = process.communicate(timeout=10)
    return err


def scrape(connection: http.client.HTTPConnection, headers: dict) -> tuple[int, float]:
    began = time.perf_counter()
    connection.request("GET", "/metrics", headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status, time.perf_counter() - began


def p99(durations: list[float]) -> float:
    return statistics.quantiles(durations, n=100, method="inclusive")[98]


def test_any_password_length_is_401_and_logs_no_traceback(exporter, web_config):
    process, port = exporter("--web-config", str(web_config))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for password in ("", "x", "p" * 72, "p" * 73, "é" * 40, "p" * 4096):
        status, _ = scrape(connection, basic(USER, password))
        assert status == 401, len(password)
    status, _ = scrape(connection, basic(USER, PASSWORD))
    assert status == 200
    log = stop_and_read_log(process)
    assert "Traceback" not in log


def test_malformed_hash_is_one_line_and_exit_2(tmp_path):
    broken = "$2b$10$" + "!" * 53  # a valid prefix, a body bcrypt cannot read
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  {USER}: '{broken}'\n")
    result = subprocess.run(
        [*EXPORTER, "--listen", "127.0.0.1:0", "--web-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert f"basic_auth_users.{USER}" in lines[0] and "malformed bcrypt hash" in lines[0]


FLOOD = textwrap.dedent(
    """
    import base64, http.client, sys, threading
    port, clients = int(sys.argv[1]), int(sys.argv[2])
    stop = threading.Event()
    barrier = threading.Barrier(clients + 1)
    counts = {}

    def attack(index):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        barrier.wait()
        attempt = 0
        while not stop.is_set():
            attempt += 1
            token = base64.b64encode(f"prometheus:wrong-{index}-{attempt}".encode()).decode()
            try:
                connection.request("GET", "/metrics", headers={"Authorization": "Basic " + token})
                response = connection.getresponse()
                response.read()
                counts[response.status] = counts.get(response.status, 0) + 1
            except (OSError, http.client.HTTPException):
                connection.close()

    threads = [threading.Thread(target=attack, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    while sum(counts.values()) < clients:  # every attacker has been answered once
        stop.wait(0.05)
    print("flooding", flush=True)
    sys.stdin.readline()
    stop.set()
    print(counts, flush=True)
    """
)


def test_wrong_password_flood_does_not_delay_a_cached_scrape(exporter, web_config):
    process, port = exporter("--web-config", str(web_config))
    good = basic(USER, PASSWORD)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    assert scrape(connection, good)[0] == 200  # the one bcrypt check; cached from here on
    alone = [scrape(connection, good) for _ in range(GOOD_SCRAPES)]
    assert {status for status, _ in alone} == {200}

    flood = subprocess.Popen(
        [sys.executable, "-c", FLOOD, str(port), str(BAD_CLIENTS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert flood.stdout.readline().strip() == "flooding"
        during = []
        ends = time.monotonic() + FLOOD_SECONDS  # several rounds of every attacker
        while len(during) < GOOD_SCRAPES or time.monotonic() < ends:
            during.append(scrape(connection, good))
        flood.stdin.write("\n")
        flood.stdin.flush()
        counts = eval(flood.stdout.readline())  # a dict printed by the flood script
    finally:
        flood.kill()
        flood.wait()
    assert {status for status, _ in during} == {200}
    # Wrong passwords are refused (401) or told to come back (429), never let through.
    assert set(counts) <= {401, 429} and sum(counts.values()) >= 2 * BAD_CLIENTS
    quiet = p99([d for _, d in alone])
    loud = p99([d for _, d in during])
    print(f"good scrape p99: {quiet * 1000:.1f} ms alone, {loud * 1000:.1f} ms during flood")
    print(f"bad attempts answered: {counts}")
    # Cached checks never wait for bcrypt; what is left is sharing 2 cores with 200
    # attacking threads. A scrape every 15 s with a 10 s timeout has room for 200 ms.
    assert loud < max(10 * quiet, 0.02), (quiet, loud)
    assert loud < 0.2, loud
    log = stop_and_read_log(process)
    assert "Traceback" not in log


def test_idle_connection_flood_under_a_low_file_limit(exporter):
    process, port = exporter(nofile=64)
    idle = []
    for _ in range(80):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        idle.append(sock)
    try:

        def good_scrape():
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                return scrape(connection, {})[0] == 200
            finally:
                connection.close()

        wait_until(good_scrape, "a scrape past 80 idle connections", timeout=30)
        # The oldest idle connections were the ones dropped; the newest are still open.
        idle[0].settimeout(5)
        assert idle[0].recv(1) == b""
        idle[-1].settimeout(0.5)
        with pytest.raises(TimeoutError):
            idle[-1].recv(1)
    finally:
        for sock in idle:
            sock.close()
    log = stop_and_read_log(process)
    assert "Traceback" not in log


def test_headers_dripped_slowly_are_cut_off_at_the_header_deadline(serve, tmp_path, monkeypatch):
    monkeypatch.setattr(server_module, "HEADER_TIMEOUT_SECONDS", 1.0)
    exporter = serve(make_options(tmp_path), sources=linux_sources(), platform="linux")
    port = exporter.server_address[1]
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    began = time.monotonic()
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    closed_after = None
    for _ in range(40):  # one header line every 0.25 s: each byte would reset a timeout
        time.sleep(0.25)
        try:
            sock.sendall(b"X-Drip: 1\r\n")
        except OSError:
            closed_after = time.monotonic() - began
            break
    sock.close()
    # The deadline (1 s) plus the reaper's 1 s tick, with room for a busy machine.
    assert closed_after is not None and closed_after < 5.0, closed_after


def test_errors_are_one_line_per_kind_and_rate_limited(caplog):
    errors = server_module.ErrorLog(interval=60.0)
    with caplog.at_level("WARNING", logger="exporters"):
        for _ in range(100):
            errors.report("ValueError", "while answering 127.0.0.1: bad")
        errors.report("KeyError", "while answering 127.0.0.1: 'x'")
    assert [r.getMessage() for r in caplog.records] == [
        "ValueError: while answering 127.0.0.1: bad",
        "KeyError: while answering 127.0.0.1: 'x'",
    ]
    assert all(r.exc_info is None for r in caplog.records)
