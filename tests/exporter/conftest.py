"""Shared fixtures for the exporter tests: in-process servers and scrape helpers."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from minicluster.exporter.options import Options
from minicluster.exporter.registry import build_collectors
from minicluster.exporter.scrape import ScrapeGuard
from minicluster.exporter.server import ExporterServer

REPO = Path(__file__).resolve().parents[2]


def make_options(tmp_path: Path, **overrides) -> Options:
    values = {
        "node": "mini-red",
        "listen_host": "127.0.0.1",
        "listen_port": 0,  # the kernel picks a free port
        "run_dir": str(tmp_path / "run"),
        "collector_timeout_seconds": 2.0,
    }
    values.update(overrides)
    return Options(**values)


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Exposition text -> {(sample name, labels): value}, parsed by prometheus_client."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text_or_samples, name: str, **labels) -> float | None:
    parsed = samples(text_or_samples) if isinstance(text_or_samples, str) else text_or_samples
    return parsed.get((name, frozenset(labels.items())))


@pytest.fixture
def serve():
    """Start exporters in this process: serve(options, sources=..., platform=..., tls, auth)."""
    servers: list[ExporterServer] = []

    def start(options: Options, sources=None, platform=None, tls=None, auth=None, collectors=None):
        if collectors is None:
            collectors = build_collectors(options, platform, sources)
        guard = ScrapeGuard(
            collectors, options.collector_timeout_seconds, options.max_concurrent_scrapes
        )
        server = ExporterServer(options, guard, tls, auth)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def get(url: str, **kwargs) -> requests.Response:
    kwargs.setdefault("timeout", 10)
    return requests.get(url, **kwargs)


@pytest.fixture
def exporter_process(tmp_path):
    """Run `python -m minicluster.exporter ARGS` and return (process, url) once it listens."""
    processes: list[subprocess.Popen] = []

    def start(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "minicluster.exporter", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        processes.append(process)
        line = process.stdout.readline()  # printed once the socket listens
        if "listening on" not in line:
            process.kill()
            pytest.fail(f"exporter did not start: {line}{process.stderr.read()}")
        return process, line.rsplit(" ", 1)[1].strip()

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stop(process: subprocess.Popen) -> int:
    process.terminate()
    return process.wait(10)


@pytest.fixture
def repo() -> Path:
    return REPO


def iter_lines(text: str) -> Iterator[str]:
    return (line for line in text.splitlines() if line and not line.startswith("#"))
