"""Run real torchrun jobs of the trainer on loopback and read what they publish."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from minicluster.core.logformat import LogLine, parse_line
from minicluster.core.profiles import local_profile
from minicluster.demo.ports import free_port_block
from tests.support import wait_until

TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
REPO = Path(__file__).resolve().parents[2]
# Tiny and quick on a shared 2-core machine.
TINY = {
    "hidden_size": 32,
    "layers": 1,
    "heads": 2,
    "vocab_size": 32,
    "seq_len": 16,
    "dataset_size": 512,
    "batch_size": 8,
}


def mlp_parameters(vocab: int, hidden: int, layers: int) -> int:
    """Counted by hand from the architecture: embedding, 2H->H, (L-1) x H->H, head."""
    return (
        vocab * hidden
        + (2 * hidden * hidden + hidden)
        + (layers - 1) * (hidden * hidden + hidden)
        + (hidden * vocab + vocab)
    )


def transformer_parameters(vocab: int, hidden: int, layers: int, seq_len: int) -> int:
    h = hidden
    block = (2 * h) + (3 * h * h + 3 * h) + (h * h + h) + (2 * h) + (4 * h * h + 4 * h)
    block += 4 * h * h + h
    return vocab * h + seq_len * h + layers * block + 2 * h + (h * vocab + vocab)


def free_port_pair(host: str = "127.0.0.1") -> int:
    """A base port P where P and P+1 are both free (one metrics port per local rank)."""
    return free_port_block(2, host)


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted label pairs): value} from a rank's /metrics."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def write_config(tmp_path: Path, **trainer: object) -> Path:
    """The local profile (mini-red and mini-yellow on loopback) with this trainer section."""
    config = local_profile(state_dir=tmp_path / "state", trainer=trainer)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return path


@dataclass
class Job:
    """One torchrun process tree, started in its own session so teardown can end it."""

    job_id: str
    tmp: Path
    base_port: int
    process: subprocess.Popen
    log_dir: Path
    run_dir: Path
    checkpoint_dir: Path
    output: Path
    _stdout: object = field(repr=False, default=None)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def stdout(self) -> str:
        return self.output.read_text()

    def rank_lines(self, rank: int) -> list[LogLine]:
        path = self.log_dir / self.job_id / f"rank{rank}.log"
        lines = [parse_line(text) for text in path.read_text().splitlines()]
        assert all(lines), f"unparsable line in {path}"
        return lines

    def discovery(self) -> dict[int, dict]:
        entries = {}
        for path in self.run_dir.glob(f"{self.job_id}-rank*.rank.json"):
            entry = json.loads(path.read_text())
            entries[entry["rank"]] = entry
        return entries

    def rank_pid(self, rank: int) -> int:
        entries = wait_until(
            lambda: self.discovery() if rank in self.discovery() else None,
            f"rank {rank}'s discovery file",
            timeout=60,
        )
        return entries[rank]["pid"]

    def scrape_when(self, rank: int, predicate, what: str, timeout: float = 90) -> dict:
        def probe():
            samples = scrape(self.base_port + rank)
            return samples if predicate(samples) else None

        try:
            return wait_until(probe, what, timeout=timeout, interval=0.1)
        except pytest.fail.Exception as exc:
            # Why the rank never answered is in the job's own output.
            pytest.fail(f"{exc}\n-- job output --\n{self.stdout()[-3000:]}")

    def finished(self, rank: int, timeout: float = 90) -> dict:
        return self.scrape_when(
            rank,
            lambda s: s.get(("trainer_job_finished", ())) == 1,
            f"rank {rank} to report trainer_job_finished 1",
            timeout,
        )

    def stop(self) -> None:
        """Kill what is left: torchrun starts each worker in a session of its own."""
        workers = []
        if self.process.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                workers = psutil.Process(self.process.pid).children(recursive=True)
        for entry in self.discovery().values():
            try:
                worker = psutil.Process(entry["pid"])
                if "trainer" in " ".join(worker.cmdline()):
                    workers.append(worker)
            except psutil.Error:
                pass
        for worker in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        psutil.wait_procs(workers, timeout=30)
        if self._stdout is not None:
            self._stdout.close()


class Launcher:
    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.jobs: list[Job] = []

    def __call__(
        self,
        *trainer_args: str,
        job_id: str = "job",
        nproc: int = 2,
        max_restarts: int = 0,
        base_port: int | None = None,
        own_dirs: bool = True,
    ) -> Job:
        base_port = base_port or free_port_pair()
        tmp = self.tmp
        dirs = {name: tmp / name for name in ("logs", "run", "checkpoints")}
        output = tmp / f"{job_id}.out"
        stdout = output.open("w")
        argv = [
            TORCHRUN,
            "--standalone",
            f"--nproc-per-node={nproc}",
            f"--max-restarts={max_restarts}",
            "--monitor-interval=0.1",
            "-m",
            "--",  # keeps torchrun's argparse away from the trainer's flags
            "minicluster.trainer",
            f"--job-id={job_id}",
            f"--metrics-base-port={base_port}",
            *trainer_args,
        ]
        if own_dirs:
            argv += [
                f"--log-dir={dirs['logs']}",
                f"--run-dir={dirs['run']}",
                f"--checkpoint-dir={dirs['checkpoints']}",
            ]
        env = {**os.environ, "XDG_STATE_HOME": str(tmp / "xdg"), "PYTHONUNBUFFERED": "1"}
        env.pop("GLOO_SOCKET_IFNAME", None)
        process = subprocess.Popen(
            argv,
            cwd=tmp,
            env=env,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        job = Job(
            job_id=job_id,
            tmp=tmp,
            base_port=base_port,
            process=process,
            log_dir=dirs["logs"],
            run_dir=dirs["run"],
            checkpoint_dir=dirs["checkpoints"],
            output=output,
            _stdout=stdout,
        )
        self.jobs.append(job)
        return job


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path)
    yield launcher
    for job in launcher.jobs:
        job.stop()


def process_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
