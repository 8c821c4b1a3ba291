"""The end-of-job summary: figures from the ranks' summary lines, the link speed, the record."""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from rich.console import Console

from minicluster.core.logformat import LogLine
from minicluster.core.metrics import PHASES
from minicluster.launcher.summary import (
    link_speed_bytes,
    rank_summaries,
    summarize,
    summary_table,
    write_record,
)
from tests.launcher.conftest import loopback_config


def _rank(
    rank: int, wall: float, comm: float, ar_seconds: float, world: int = 2, staging: float = 0.0
) -> dict:
    return {
        "job_id": "j",
        "rank": rank,
        "world_size": world,
        "steps": 10,
        "samples": 320,
        "wall_seconds": wall,
        "phase_seconds": {
            "data": 0.1,
            "forward": 0.2,
            "backward": 0.4,
            "comm": comm,
            "optimizer": 0.1,
            "staging": staging,
        },
        "allreduce_calls": 10,
        "allreduce_bytes": 10_000,
        "allreduce_seconds": ar_seconds,
        "grad_bytes": 1000,
        "restarts": rank,  # rank 1 restarted once
        "final_loss": 0.5 + rank,
    }


RANKS = {0: _rank(0, 2.0, 0.2, 0.01), 1: _rank(1, 2.5, 0.4, 0.03)}


def test_figures_follow_from_the_rank_summaries():
    s = summarize(RANKS, world_size=2, target_steps=10, wall_seconds=7.0, link_speed_bytes=1.25e8)
    assert s["steps"] == 10 and s["ranks_reported"] == 2 and s["samples"] == 640
    assert s["samples_per_second"] == pytest.approx(640 / 2.5)  # over the slowest rank
    assert s["phase_seconds_per_step"]["comm"] == pytest.approx(0.03)
    assert s["step_seconds"] == pytest.approx(0.11)
    # Per rank: comm over all phases (rank 0: 0.2 s of 1.0 s, rank 1: 0.4 s of 1.2 s); the
    # job's figure is the least-communicating rank's, as in job:trainer_comm_fraction:min.
    assert s["comm_fraction_by_rank"] == {"0": pytest.approx(0.2), "1": pytest.approx(1 / 3)}
    assert s["comm_fraction"] == pytest.approx(0.2)
    # algbw = 10 kB / 20 ms mean = 500 kB/s; busbw = algbw * 2(n-1)/n = algbw for n = 2.
    assert s["allreduce_algbw_bytes_per_second"] == pytest.approx(5e5)
    assert s["allreduce_busbw_bytes_per_second"] == pytest.approx(5e5)
    assert s["busbw_link_ratio"] == pytest.approx(5e5 / 1.25e8)
    assert s["restarts"] == 1 and s["final_loss"] == 0.5 and s["wall_seconds"] == 7.0


def test_mps_staging_counts_as_communication():
    ranks = {r: _rank(r, 2.0, 0.2, 0.01, staging=0.1) for r in range(2)}
    s = summarize(ranks, world_size=2, target_steps=10, wall_seconds=3, link_speed_bytes=None)
    # 0.2 s comm + 0.1 s staging of 1.1 s in all phases; without staging it would be 0.2/1.1.
    assert s["comm_fraction"] == pytest.approx(0.3 / 1.1)


def test_no_phase_time_gives_no_fraction():
    ranks = {0: {**_rank(0, 2.0, 0.0, 0.01), "phase_seconds": dict.fromkeys(PHASES, 0.0)}}
    s = summarize(ranks, world_size=1, target_steps=10, wall_seconds=3, link_speed_bytes=None)
    assert s["comm_fraction"] is None and s["comm_fraction_by_rank"] == {"0": None}


def test_bus_bandwidth_uses_the_world_size():
    ranks = {r: _rank(r, 2.0, 0.2, 0.02, world=4) for r in range(4)}
    s = summarize(ranks, world_size=4, target_steps=10, wall_seconds=3, link_speed_bytes=None)
    assert s["allreduce_busbw_bytes_per_second"] == pytest.approx(5e5 * 1.5)
    assert s["busbw_link_ratio"] is None


def test_a_job_without_summaries_says_so():
    s = summarize({}, world_size=2, target_steps=10, wall_seconds=1.5, link_speed_bytes=None)
    assert s["ranks_reported"] == 0 and "steps" not in s
    console = Console(record=True, width=100)
    console.print(summary_table("j", "interrupted", s))
    text = console.export_text()
    assert "job j: interrupted" in text and "0/2" in text


def test_summary_lines_are_read_from_rank_output():
    lines = [
        LogLine("t", "mini-red", 0, "INFO", "summary " + json.dumps(RANKS[0])),
        LogLine("t", "mini-red", 0, "INFO", "summary {not json"),
        LogLine("t", "mini-red", 0, "INFO", "step step=1 target=2"),
    ]
    assert rank_summaries(lines) == {0: RANKS[0]}


def test_the_table_shows_the_figures():
    s = summarize(RANKS, world_size=2, target_steps=10, wall_seconds=7.0, link_speed_bytes=1.25e8)
    console = Console(record=True, width=160)
    console.print(summary_table("j", "succeeded", s))
    text = console.export_text()
    assert "10/10" in text and "256.0" in text
    assert "comm 30.00 ms" in text
    assert "20.0% (least-communicating rank; ranks 20.0% to 33.3%)" in text
    assert "bus bandwidth 500.00 kB/s = 0.4% of link 125.00 MB/s" in text


def test_link_speed_comes_from_the_exporters_training_interface(tmp_path):
    config = loopback_config(tmp_path)
    registry = CollectorRegistry()
    speed = Gauge("node_network_speed_bytes", "speed", ["device"], registry=registry)
    speed.labels(device="lo").set(1.25e9)
    speed.labels(device="eth9").set(1.0)  # another interface: ignored
    server, thread = start_http_server(
        config.nodes[0].exporter_port, "127.0.0.1", registry=registry
    )
    try:
        # mini-yellow's exporter is not running: the known speed is mini-red's.
        assert link_speed_bytes(config, timeout=1) == 1.25e9
    finally:
        server.shutdown()
        thread.join()


def test_the_record_keeps_keys_others_wrote(tmp_path):
    (tmp_path / "j.json").write_text(json.dumps({"report": "r.html", "status": "old"}))
    path = write_record(tmp_path, "j", {"status": "succeeded", "summary": {"steps": 3}})
    assert json.loads(path.read_text()) == {
        "report": "r.html",
        "status": "succeeded",
        "summary": {"steps": 3},
    }


def test_without_metrics_the_all_reduce_is_not_counted():
    ranks = {r: {**_rank(r, 2.0, 0.0, 0.0), "allreduce_bytes": None, "allreduce_calls": None,
                 "allreduce_seconds": None} for r in range(2)}  # fmt: skip
    s = summarize(ranks, world_size=2, target_steps=10, wall_seconds=3, link_speed_bytes=None)
    assert s["allreduce_bytes"] is None and s["allreduce_busbw_bytes_per_second"] is None
    console = Console(record=True, width=120)
    console.print(summary_table("j", "succeeded", s))
    assert "not counted (the ranks ran with --no-metrics)" in console.export_text()


def test_with_tls_the_link_speed_is_read_with_the_operators_client_certificate(tmp_path):
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    import requests
    from prometheus_client import generate_latest

    from minicluster.core.config import parse_config
    from minicluster.security.pki import ensure_pki

    data = loopback_config(tmp_path).model_dump(mode="json")
    data["security"] = {"tls": True, "pki_dir": str(tmp_path / "pki")}
    config = parse_config(data, "<test>")
    pki = ensure_pki(config)
    registry = CollectorRegistry()
    Gauge("node_network_speed_bytes", "speed", ["device"], registry=registry).labels(
        device="lo"
    ).set(1.25e9)

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    # What exporter-web.yml asks for: the node's certificate, client certificates required.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.node_cert("mini-red"), pki.node_key("mini-red"))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(pki.ca_cert)
    server = HTTPServer(("127.0.0.1", config.nodes[0].exporter_port), Metrics)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{config.nodes[0].exporter_port}/metrics"
        # Without a client certificate the exporter answers no one.
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url, verify=str(pki.ca_cert), timeout=2).raise_for_status()
        assert link_speed_bytes(config, timeout=2) == 1.25e9
        # On a machine without the operator's key the speed is unknown, not an error.
        pki.client_key("operator").unlink()
        assert link_speed_bytes(config, timeout=2) is None
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
