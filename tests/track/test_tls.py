"""A rank's endpoint on a node whose config says security.tls: mutual TLS or no start at all.

The PKI is the one deploy makes (ensure_pki), and the node's files sit where deploy puts
them (<install_dir>/tls/); clients hold the certificates Prometheus and a stranger would.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests
import yaml

from minicluster import track
from minicluster.core import layout
from minicluster.core.config import Config, NodeSettings
from minicluster.core.profiles import local_profile
from minicluster.security.pki import Pki, ensure_pki
from minicluster.track import settings as s
from minicluster.track.tls import TlsFileError, server_context
from tests.support import REPO, wait_until
from tests.trainer.conftest import TINY, Launcher

NODE = "mini-red"


@dataclass
class Cluster:
    config: Config
    config_path: Path
    node: NodeSettings
    pki: Pki

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "MINICLUSTER_CONFIG": str(self.config_path),
            "MINICLUSTER_NODE": NODE,
            "MINICLUSTER_JOB_ID": "tls-job",
            "MINICLUSTER_METRICS_PORT": "0",
            **extra,
        }

    def client(self) -> tuple[str, str]:
        return client_of(self.pki)


def client_of(pki: Pki, who: str = "prometheus") -> tuple[str, str]:
    return str(pki.client_cert(who)), str(pki.client_key(who))


def tls_config(tmp_path: Path, pki_name: str = "pki") -> Config:
    return local_profile(
        state_dir=tmp_path / "state",
        trainer={**TINY, "checkpoint_interval": 0},
        security={"tls": True, "pki_dir": str(tmp_path / pki_name)},
    )


@pytest.fixture
def cluster(tmp_path) -> Cluster:
    """The local profile with TLS on, its PKI, and mini-red's files installed as deploy does."""
    config = tls_config(tmp_path)
    pki = ensure_pki(config)
    node = config.node(NODE)
    Path(layout.tls_dir(node)).mkdir(parents=True, mode=0o700)
    for source, name in [(pki.ca_cert, "ca.crt"), (pki.node_cert(NODE), "node.crt"),
                         (pki.node_key(NODE), "node.key")]:  # fmt: skip
        shutil.copyfile(source, layout.tls_path(node, name))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return Cluster(config, path, node, pki)


@pytest.fixture
def stranger_pki(tmp_path) -> Pki:
    """Another cluster's CA with its own Prometheus certificate."""
    return ensure_pki(tls_config(tmp_path, pki_name="other-pki"))


def refusal(port: int, context: ssl.SSLContext) -> str:
    """What a client that the rank refuses learns: the TLS alert's reason, or how the
    connection ended. Reads before writing, so the alert is not lost to a reset."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
                data = conn.recv(1024)
        except ssl.SSLError as exc:
            return exc.reason or str(exc)
        except ConnectionError as exc:
            return type(exc).__name__
    return f"answered {data!r}"


def client_context(ca: Path, cert: tuple[str, str] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


def test_settings_name_the_node_files_only_when_tls_is_on(cluster, tmp_path):
    got = s.resolve(cluster.env())
    tls_dir = Path(cluster.node.install_dir) / "tls"
    assert got.tls is not None and got.metrics_address == "127.0.0.1"
    assert (got.tls.ca, got.tls.cert, got.tls.key) == (
        tls_dir / "ca.crt", tls_dir / "node.crt", tls_dir / "node.key",
    )  # fmt: skip
    plain = local_profile(state_dir=tmp_path / "plain")
    assert s.tls_files(plain, plain.node(NODE)) is None
    assert server_context(got.tls).minimum_version == ssl.TLSVersion.TLSv1_2


def test_the_cluster_prometheus_certificate_reads_the_rank_and_no_one_else(
    cluster, stranger_pki, capfd
):
    t = track.start(total_steps=10, settings=s.resolve(cluster.env()))
    for _ in range(3):
        t.step(samples=4)
    port = t.sink.port
    ca = cluster.pki.ca_cert
    # Bound to the node's configured address only, never every interface.
    listening = [c.laddr for c in psutil.Process().net_connections("tcp") if c.laddr.port == port]
    assert listening and {address.ip for address in listening} == {cluster.node.address}

    # Prometheus' certificate, checking the rank's name against the cluster CA.
    text = requests.get(
        f"https://127.0.0.1:{port}/metrics", cert=cluster.client(), verify=str(ca), timeout=10
    ).text
    assert "trainer_steps_total 3.0" in text and "trainer_samples_total 12.0" in text
    assert "trainer_target_steps 10.0" in text and 'job_id="tls-job"' in text

    # No certificate; a certificate of another cluster's CA; plain HTTP.
    assert "CERTIFICATE_REQUIRED" in refusal(port, client_context(ca))
    assert "UNKNOWN_CA" in refusal(port, client_context(ca, client_of(stranger_pki)))
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)

    # A connection that never says hello holds only itself: the next scrape is answered.
    with socket.create_connection(("127.0.0.1", port)):
        started = time.monotonic()
        again = requests.get(
            f"https://127.0.0.1:{port}/metrics", cert=cluster.client(), verify=str(ca), timeout=5
        )
        assert again.status_code == 200 and time.monotonic() - started < 5
    t.close()
    assert "Traceback" not in capfd.readouterr().err  # refused clients leave no traces


def test_a_flood_of_connections_holds_at_most_the_cap_and_the_rank_recovers(cluster, monkeypatch):
    from minicluster.track import tls

    monkeypatch.setattr(tls, "MAX_CONNECTIONS", 4)
    t = track.start(total_steps=10, settings=s.resolve(cluster.env()))
    port, ca = t.sink.port, cluster.pki.ca_cert

    def scrape(timeout: float = 5) -> int:
        return requests.get(
            f"https://127.0.0.1:{port}/metrics",
            cert=cluster.client(),
            verify=str(ca),
            timeout=timeout,
        ).status_code

    assert scrape() == 200
    threads_before = len(psutil.Process().threads())
    # Connections that never say hello: the first four each hold a slot (and a thread)...
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
    wait_until(lambda: len(psutil.Process().threads()) >= threads_before + 4, "four held slots", 10)
    # ...and every one past them is closed at once, with no thread started for it.
    flood = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(12)]
    try:
        started = time.monotonic()
        for extra in flood:
            assert extra.recv(1) == b""  # closed by the rank, long before the 10 s limit
        assert time.monotonic() - started < 5
        assert len(psutil.Process().threads()) <= threads_before + 4
    finally:
        for sock in flood + held:
            sock.close()
    # The held ones gone, Prometheus' scrape is answered again.
    wait_until(lambda: scrape() == 200, "a scrape answered after the flood", 15)
    t.close()


def one_line_failure(result: subprocess.CompletedProcess, missing: Path) -> str:
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 2, lines
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert str(missing) in lines[0] and "`make deploy` installs it" in lines[0]
    return lines[0]


def test_a_tracked_program_without_its_node_certificate_stops_with_one_line(cluster):
    missing = Path(layout.tls_path(cluster.node, "node.crt"))
    missing.unlink()
    program = "from minicluster import track; track.start(total_steps=1); print('trained')"
    env = {**os.environ, **cluster.env()}
    result = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120
    )
    line = one_line_failure(result, missing)
    assert " ERROR tls " in line and "No such file or directory" in line


def test_the_trainer_without_the_cluster_ca_stops_before_joining_the_job(cluster):
    missing = Path(layout.tls_path(cluster.node, "ca.crt"))
    missing.unlink()
    argv = [sys.executable, "-m", "minicluster.trainer", "--config", str(cluster.config_path),
            "--node", NODE, "--steps", "1"]  # fmt: skip
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert one_line_failure(result, missing).startswith(f"trainer: {missing}: cannot read it")


@pytest.fixture
def launch(tmp_path) -> Iterator[Launcher]:
    """The trainer's torchrun jobs, ended at teardown whatever happened."""
    launcher = Launcher(tmp_path)
    yield launcher
    for job in launcher.jobs:
        job.stop()


@pytest.mark.integration
def test_the_trainer_ranks_under_torchrun_answer_prometheus_over_mutual_tls(cluster, launch):
    job = launch("--config", str(cluster.config_path), "--node", NODE, "--steps", "6",
                 "--log-interval", "2", "--linger", "120", job_id="tls-trainer")  # fmt: skip
    ca = str(cluster.pki.ca_cert)

    def finished(rank: int) -> str:
        url = f"https://127.0.0.1:{job.base_port + rank}/metrics"

        def probe() -> str | None:
            text = requests.get(url, cert=cluster.client(), verify=ca, timeout=5).text
            return text if "trainer_job_finished 1.0" in text else None

        return wait_until(probe, f"rank {rank} to finish over TLS", timeout=180, interval=0.5)

    for rank in (0, 1):
        text = finished(rank)
        assert "trainer_steps_total 6.0" in text and 'world_size="2"' in text
        assert "CERTIFICATE_REQUIRED" in refusal(job.base_port + rank, client_context(Path(ca)))
    targets = {rank: entry["target"] for rank, entry in job.discovery().items()}
    assert targets == {0: f"127.0.0.1:{job.base_port}", 1: f"127.0.0.1:{job.base_port + 1}"}


def test_a_key_of_another_node_is_named_and_refused(cluster):
    key = Path(layout.tls_path(cluster.node, "node.key"))
    shutil.copyfile(cluster.pki.node_key("mini-yellow"), key)
    with pytest.raises(TlsFileError) as refused:
        server_context(s.resolve(cluster.env()).tls)
    cert = layout.tls_path(cluster.node, "node.crt")
    assert str(refused.value).startswith(f"{cert}: not a PEM certificate matching {key}")
    assert "KEY_VALUES_MISMATCH" in str(refused.value)
