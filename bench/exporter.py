"""Benchmark: this exporter side by side with Debian's node_exporter, in one run.

    .venv/bin/python bench/exporter.py [--scrapes 1000] [--concurrency 10] [--soak 10000]
        [--skip-tls] [--markdown]

The exporters run on 127.0.0.1 with kernel-chosen ports: this one and node_exporter with
their default collectors, then node_exporter again with only the collectors that match
this exporter's (`SAME_COLLECTORS`), for a like-for-like comparison. Then both again over
TLS with client certificates required, as a deployed cluster serves them: the certificates
come from the cluster PKI (`ensure_pki`, in a temporary folder) and one web-config file in
exporter-toolkit's format serves both exporters (`--skip-tls` leaves these two out).
The client behaves like Prometheus: one keep-alive connection per scraper (over TLS: one
handshake with the client certificate, then requests on that connection), Prometheus'
Accept header and `Accept-Encoding: gzip`. Every exporter is started first, then:

1. sequential scrapes (what Prometheus does: one scrape at a time per target), in
   `ROUNDS` rounds of `ROUND_SCRAPES` per exporter, taking turns, so a machine that gets
   busier or quieter during the run (a shared VM does) weighs on every exporter alike
   (each round starts with one scrape that is not counted);
2. for each exporter, one after the other: `--scrapes` scrapes at `--concurrency`
   (latency median/p99, CPU seconds per scrape from the exporter's own CPU time, errors),
3. then `--soak` scrapes at the same concurrency, sampling the exporter's RSS every tenth.

Prints a rich table with the ratios (ours over node_exporter's plain-HTTP scrape, and the
TLS scrape over the same exporter's plain one); docs/performance.md has the numbers of a run
and what they mean. Run it under the shared lock (it starts servers):

    flock /tmp/minicluster-e2e.lock .venv/bin/python bench/exporter.py --markdown
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml
from rich.console import Console
from rich.table import Table

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "X-Prometheus-Scrape-Timeout-Seconds": "10",
}
ROUNDS, ROUND_SCRAPES = 10, 40
SEQUENTIAL_SCRAPES = ROUNDS * ROUND_SCRAPES
BENCH_NODE = {"name": "bench", "address": "127.0.0.1", "role": "master", "ssh_user": "bench"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    cpu_seconds: float = 0.0
    series: int = 0
    rss_samples: list[int] = field(default_factory=list)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def add(self, other: Phase) -> None:
        """Count another round of the same phase in this one."""
        self.latencies += other.latencies
        self.errors += other.errors
        self.cpu_seconds += other.cpu_seconds
        self.series = self.series or other.series
        self.rss_samples += other.rss_samples


class Scraper:
    """One keep-alive connection, as Prometheus keeps one per target; with `tls`, HTTPS
    with the client certificate that context holds."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None):
        self.port, self.tls = port, tls
        self.connection = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        if self.tls is None:
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=self.tls)

    def scrape(self) -> tuple[float, bytes | None]:
        started = time.perf_counter()
        try:
            self.connection.request("GET", "/metrics", headers=HEADERS)
            response = self.connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = self._connect()
            return time.perf_counter() - started, None
        elapsed = time.perf_counter() - started
        if response.status != 200:
            return elapsed, None
        if response.getheader("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return elapsed, body


def run_phase(
    port: int,
    process: psutil.Process,
    scrapes: int,
    concurrency: int,
    rss_every: int = 0,
    tls: ssl.SSLContext | None = None,
) -> Phase:
    phase = Phase()
    lock = threading.Lock()
    remaining = [scrapes]
    done = [0]

    def worker() -> None:
        scraper = Scraper(port, tls)
        while True:
            with lock:
                if remaining[0] == 0:
                    return
                remaining[0] -= 1
            elapsed, body = scraper.scrape()
            with lock:
                phase.latencies.append(elapsed)
                done[0] += 1
                if body is None:
                    phase.errors += 1
                elif not phase.series:
                    phase.series = sum(
                        1 for line in body.splitlines() if line and not line.startswith(b"#")
                    )
                if rss_every and done[0] % rss_every == 0:
                    phase.rss_samples.append(process.memory_info().rss)

    before = process.cpu_times()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = process.cpu_times()
    phase.cpu_seconds = (after.user + after.system) - (before.user + before.system)
    return phase


def wait_ready(port: int, process: subprocess.Popen, tls: ssl.SSLContext | None = None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"exporter exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
            if Scraper(port, tls).scrape()[1] is not None:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"nothing answered on port {port}")


def start_ours(
    workdir: Path, port: int, concurrency: int, web_config: Path | None = None
) -> subprocess.Popen:
    # max_concurrent_scrapes must admit the benchmark's concurrency, or the cap answers 503
    # (as designed); node_exporter's own cap (--web.max-requests) defaults to 40.
    config = {
        "nodes": [BENCH_NODE],
        "exporter": {"max_concurrent_scrapes": max(concurrency, 4)},
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    argv = [sys.executable, "-m", "minicluster.exporter", "--config", str(path), "--node", "bench"]
    argv += ["--listen", f"127.0.0.1:{port}"]
    if web_config is not None:
        argv += ["--web-config", str(web_config)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# node_exporter's collectors for what this exporter collects on Linux (its stat also
# publishes the boot time, our boottime collector's family).
SAME_COLLECTORS = (
    "arp conntrack cpu diskstats entropy filefd filesystem loadavg meminfo netclass netdev "
    "netstat os pressure sockstat softnet stat textfile time timex udp_queues uname vmstat"
)


def start_node_exporter(
    port: int, same_collectors: bool = False, web_config: Path | None = None
) -> subprocess.Popen:
    argv = [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}"]
    if web_config is not None:
        argv.append(f"--web.config.file={web_config}")
    if same_collectors:
        argv.append("--collector.disable-defaults")
        argv += [f"--collector.{name}" for name in SAME_COLLECTORS.split()]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@dataclass
class Client:
    """The TLS side of a deployed cluster: its exporters' web-config and Prometheus'
    client certificate, from the cluster PKI that deploy creates."""

    web_config: Path
    context: ssl.SSLContext


def cluster_tls(workdir: Path) -> Client:
    # The PKI code needs the control machine's extra (cryptography); imported only here.
    from minicluster.core.config import Config
    from minicluster.security.pki import ensure_pki

    config = Config.model_validate(
        {
            "cluster": {"name": "bench"},
            "nodes": [BENCH_NODE],
            "security": {"tls": True, "pki_dir": str(workdir / "pki")},
        }
    )
    pki = ensure_pki(config)
    # As minicluster.render.webconfig writes exporter-web.yml, with this PKI's paths.
    web_config = workdir / "exporter-web.yml"
    tls_server = {
        "cert_file": str(pki.node_cert("bench")),
        "key_file": str(pki.node_key("bench")),
        "client_auth_type": "RequireAndVerifyClientCert",
        "client_ca_file": str(pki.ca_cert),
    }
    web_config.write_text(yaml.safe_dump({"tls_server_config": tls_server}))
    context = ssl.create_default_context(cafile=str(pki.ca_cert))  # checks 127.0.0.1 too
    context.load_cert_chain(pki.client_cert("prometheus"), pki.client_key("prometheus"))
    return Client(web_config, context)


@dataclass
class Target:
    name: str
    start: Callable[[int], subprocess.Popen]
    tls: ssl.SSLContext | None = None


@dataclass
class Running:
    target: Target
    port: int
    process: subprocess.Popen
    proc: psutil.Process


def start(target: Target) -> Running:
    port = free_port()
    process = target.start(port)
    try:
        wait_ready(port, process, target.tls)
    except BaseException:
        process.terminate()
        raise
    return Running(target, port, process, psutil.Process(process.pid))


def sequential_rounds(running: list[Running], console: Console) -> dict[str, Phase]:
    """ROUNDS rounds of ROUND_SCRAPES one-at-a-time scrapes per exporter, taking turns."""
    console.print(
        f"[bold]sequential[/]: {ROUNDS} rounds of {ROUND_SCRAPES} scrapes per exporter, in turn"
    )
    phases = {r.target.name: Phase() for r in running}
    for _ in range(ROUNDS):
        for r in running:
            # Not counted: the first scrape after another exporter's round finds this one's
            # caches taken by the other, which no back-to-back scrape does.
            run_phase(r.port, r.proc, 1, 1, tls=r.target.tls)
            phases[r.target.name].add(run_phase(r.port, r.proc, ROUND_SCRAPES, 1, tls=r.target.tls))
    return phases


def measure_loaded(r: Running, args, console: Console) -> dict:
    name, tls = r.target.name, r.target.tls
    console.print(f"[bold]{name}[/]: {args.scrapes} scrapes at concurrency {args.concurrency}")
    loaded = run_phase(r.port, r.proc, args.scrapes, args.concurrency, tls=tls)
    console.print(f"[bold]{name}[/]: {args.soak} scrapes for RSS")
    soak = run_phase(
        r.port, r.proc, args.soak, args.concurrency, rss_every=args.soak // 10, tls=tls
    )
    return {"loaded": loaded, "soak": soak}


def measure(targets: list[Target], args, console: Console) -> dict[str, dict]:
    running: list[Running] = []
    try:
        for target in targets:
            running.append(start(target))
        sequential = sequential_rounds(running, console)
        results = {}
        for r in running:
            results[r.target.name] = {"sequential": sequential[r.target.name]}
            results[r.target.name] |= measure_loaded(r, args, console)
        return results
    finally:
        for r in running:
            r.process.terminate()
            r.process.wait(10)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def mb(value: float) -> str:
    return f"{value / 1e6:.1f} MB"


OURS, NODE_EXPORTER_NAME = "minicluster exporter", "node_exporter"
SAME, OURS_TLS, NODE_EXPORTER_TLS = (
    "node_exporter, same collectors",
    "minicluster exporter, TLS",
    "node_exporter, TLS",
)
# Ratio columns: (numerator, denominator). Every TLS figure is also set against
# node_exporter's plain-HTTP scrape, which is what the TLS goal is stated against.
RATIOS = (
    (OURS, NODE_EXPORTER_NAME),
    (OURS, SAME),
    (OURS_TLS, NODE_EXPORTER_NAME),
    (OURS_TLS, OURS),
    (NODE_EXPORTER_TLS, NODE_EXPORTER_NAME),
)
# Column titles; the exporters in full are listed under the table.
SHORT = {
    OURS: "ours",
    NODE_EXPORTER_NAME: "node_exporter",
    SAME: "node_exporter same",
    OURS_TLS: "ours TLS",
    NODE_EXPORTER_TLS: "node_exporter TLS",
}


def report(results: dict[str, dict], args, console: Console) -> None:
    python = sys.version.split()[0]
    table = Table(title=f"Exporter benchmark ({psutil.cpu_count()} CPUs, Python {python})")
    ratios = [(a, b) for a, b in RATIOS if a in results and b in results]
    headers = [
        "measure",
        *(SHORT[name] for name in results),
        *(f"{SHORT[a]} / {SHORT[b]}" for a, b in ratios),
    ]
    for header in headers:
        table.add_column(header, justify="left" if header == "measure" else "right")
    rows: list[list[str]] = []

    def row(label: str, pick, fmt) -> None:
        values = {name: pick(result) for name, result in results.items()}
        cells = [label, *(fmt(value) for value in values.values())]
        for a, b in ratios:
            cells.append(f"{values[a] / values[b]:.2f}x" if values[b] else "-")
        rows.append(cells)
        table.add_row(*cells)

    row("sequential median latency", lambda r: statistics.median(r["sequential"].latencies), ms)
    row("sequential p99 latency", lambda r: r["sequential"].quantile(0.99), ms)
    row(
        "sequential CPU per scrape",
        lambda r: r["sequential"].cpu_seconds / SEQUENTIAL_SCRAPES,
        ms,
    )
    label = f"x{args.concurrency}"
    row(f"{label} median latency", lambda r: statistics.median(r["loaded"].latencies), ms)
    row(f"{label} p99 latency", lambda r: r["loaded"].quantile(0.99), ms)
    row(f"{label} CPU per scrape", lambda r: r["loaded"].cpu_seconds / args.scrapes, ms)
    row("series per scrape", lambda r: r["loaded"].series, str)
    row(
        "errors (all phases)",
        lambda r: r["sequential"].errors + r["loaded"].errors + r["soak"].errors,
        str,
    )
    row(f"RSS after {args.soak // 10} soak scrapes", lambda r: r["soak"].rss_samples[0], mb)
    row(f"RSS after {args.soak} soak scrapes", lambda r: r["soak"].rss_samples[-1], mb)
    row("RSS max during soak", lambda r: max(r["soak"].rss_samples), mb)
    console.print(table)
    console.print(
        "ours: the minicluster exporter; node_exporter same: node_exporter with only the "
        "collectors this exporter has; TLS: TLS with a client certificate required, over a "
        "kept-alive connection, certificates from the cluster PKI"
    )
    load = ", ".join(f"{x:.1f}" for x in psutil.getloadavg())
    console.print(f"load average at the end (1, 5, 15 min): {load}")
    if args.markdown:
        print("\n| " + " | ".join(headers) + " |")
        print("| --- |" + " ---: |" * (len(headers) - 1))
        for cells in rows:
            print("| " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scrapes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--soak", type=int, default=10_000)
    parser.add_argument("--markdown", action="store_true", help="also print a markdown table")
    parser.add_argument(
        "--skip-tls", action="store_true", help="leave out the two exporters over TLS"
    )
    args = parser.parse_args(argv)
    if not shutil.which(NODE_EXPORTER):
        print(f"{NODE_EXPORTER} is missing: apt-get install prometheus-node-exporter")
        return 1
    console = Console()
    if not console.is_terminal:
        console = Console(width=240)  # a file or pipe: room for every column
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        targets = [
            Target(OURS, lambda port: start_ours(workdir, port, args.concurrency)),
            Target(NODE_EXPORTER_NAME, start_node_exporter),
            Target(SAME, lambda port: start_node_exporter(port, same_collectors=True)),
        ]
        if not args.skip_tls:
            tls = cluster_tls(workdir)
            targets += [
                Target(
                    OURS_TLS,
                    lambda port: start_ours(workdir, port, args.concurrency, tls.web_config),
                    tls.context,
                ),
                Target(
                    NODE_EXPORTER_TLS,
                    lambda port: start_node_exporter(port, web_config=tls.web_config),
                    tls.context,
                ),
            ]
        results = measure(targets, args, console)
    report(results, args, console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
