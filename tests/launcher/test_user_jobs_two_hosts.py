"""`run-job -- python ...`: your own project on the two simulated Minis, over ssh.

The examples/ projects are copied to a folder of the test, shipped to both hosts (deployed
once for the module), and run under torchrun from a non-login ssh shell whose environment
is only PATH and pip settings. What they do is checked in the merged log, in runs/<job>.json
and in Prometheus on mini-red; what is left running is checked in each host's namespace.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from minicluster.core.layout import jobenv_dir, workdir_dir
from minicluster.core.logformat import parse_line
from minicluster.core.promapi import Prometheus
from minicluster.launcher.ship import project_key
from tests.launcher.conftest import cli, deploy_pair, job_processes, pair_prometheus
from tests.support import job_failure, wait_until

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
JOB_PROCESS_MARKERS = ("torch.distributed.run", "minicluster.track.observe")
# examples/ddp_*/train.py's model: Linear(64, 128) and Linear(128, 10), float32.
GRAD_BYTES = (64 * 128 + 128 + 128 * 10 + 10) * 4
LINGER = 10  # seconds each rank's /metrics stays up after the end: discovery and a few scrapes

BOOM = """\
import os
import torch.distributed as dist

dist.init_process_group("gloo")
if dist.get_rank() == 1:
    raise ValueError("boom on purpose in rank " + os.environ["RANK"])
dist.barrier()  # rank 0 waits here for a peer that is gone
"""
SLEEPER = """\
import time
import torch.distributed as dist

dist.init_process_group("gloo")
print(f"rank {dist.get_rank()} sleeping", flush=True)
while True:
    time.sleep(0.5)
"""


# --- helpers -------------------------------------------------------------------------------


def _job_processes(cluster, host) -> list[str]:
    """Command lines of torchrun and rank processes in `host`'s namespace."""
    return [f"{p.pid}: {c}" for p, c in job_processes(cluster, host, JOB_PROCESS_MARKERS)]


def _nothing_left(cluster) -> None:
    for host in cluster.hosts.values():
        wait_until(
            lambda host=host: not _job_processes(cluster, host),
            f"no torchrun or rank left on {host.name}",
            timeout=30,
        )


def _run_job_argv(cluster, out: Path, workdir: Path, command: list[str], *flags: str):
    return cli(
        "run-job", "--config", str(cluster.config_path),
        "--logs-dir", str(out / "logs"), "--runs-dir", str(out / "runs"),
        "--workdir", str(workdir), *flags, "--", *command,
    )  # fmt: skip


def _run_job(cluster, out: Path, workdir: Path, command: list[str], *flags: str):
    started = time.monotonic()
    result = subprocess.run(
        _run_job_argv(cluster, out, workdir, command, *flags),
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    print(f"{' '.join(command)}: exit {result.returncode} in {time.monotonic() - started:.1f} s")
    return result


def _records(out: Path) -> list[dict]:
    paths = sorted((out / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime)
    return [json.loads(p.read_text()) for p in paths]


def _merged(out: Path, record: dict) -> list[str]:
    return Path(record["logs"]["merged"]).read_text().splitlines()


def _lines_from(lines: list[str], text: str) -> set[str]:
    """The nodes (third word of a merged line: `TIME NODE ...`) whose lines contain `text`."""
    return {line.split(" ")[1] for line in lines if text in line}


@pytest.fixture(scope="module")
def minis(two_minis):
    cluster = two_minis
    deploy_pair(cluster, trainer={"max_restarts": 0, "log_interval": 5})
    return cluster


def _project(tmp_path: Path, example: str) -> Path:
    root = tmp_path / example
    shutil.copytree(EXAMPLES / example, root)
    return root


def _scripts(root: Path, scripts: dict[str, str]) -> Path:
    """A project folder `root` holding these scripts (file name -> source)."""
    root.mkdir()
    for name, source in scripts.items():
        (root / name).write_text(source)
    return root


# --- the tests -----------------------------------------------------------------------------


def test_the_sharding_layout_runs_on_both_hosts_and_only_changes_travel(minis, tmp_path):
    cluster = minis
    root = _project(tmp_path, "sharding")
    out = tmp_path / "out"

    first = _run_job(cluster, out, root, ["python", "run_distributed.py", "--items", "100000"])
    assert first.returncode == 0, job_failure(first)
    record = _records(out)[-1]
    assert record["status"] == "succeeded" and record["project"]["files"] == 6
    lines = _merged(out, record)
    assert _lines_from(lines, "expected 333328333350000, items covered 100000/100000: OK") == {
        "mini-red",
        "mini-yellow",
    }
    first_bytes = {s["node"]: s["sent_bytes"] for s in record["project"]["shipped"]}
    assert all(s["sent_files"] == 6 for s in record["project"]["shipped"])
    assert "sent 6 files" in first.stderr and "copy verified" in first.stderr
    # The command each node ran: its job environment's python, in its copy, under torchrun.
    yellow = cluster.config.node("mini-yellow")
    key = project_key(root)
    assert record["commands"]["mini-yellow"][0] == f"{jobenv_dir(yellow, key)}/bin/python"
    assert workdir_dir(yellow, key).startswith("/opt/minicluster/jobs/")

    # The sharding test, both ways, from the unchanged folder: nothing travels.
    for command in (["-m", "src.tests.test_sharding"], ["src/tests/test_sharding.py"]):
        again = _run_job(cluster, out, root, ["python", *command])
        assert again.returncode == 0, job_failure(again)
        record = _records(out)[-1]
        assert _lines_from(_merged(out, record), "2 sharding tests passed") == {
            "mini-red",
            "mini-yellow",
        }
        for shipped in record["project"]["shipped"]:
            assert shipped["sent_files"] == 0 and shipped["unchanged"] == 6
            assert shipped["sent_bytes"] < 0.01 * first_bytes[shipped["node"]]
        assert "sent 0 files, 0 B to mini-yellow; 6 unchanged" in again.stderr
    print(f"sent per node: first run {first_bytes}, unchanged runs 0 B")

    # With the environment emptied, as a bare non-login shell has it, on the worker.
    tree, python = workdir_dir(yellow, key), f"{jobenv_dir(yellow, key)}/bin/python"
    for command in ("-m src.tests.test_sharding", "src/tests/test_sharding.py"):
        done = cluster.yellow.ssh(f"cd {tree} && env -i {python} {command}", check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "rank 0: 2 sharding tests passed"

    # An edited file travels, alone, and the new code runs.
    script = root / "run_distributed.py"
    script.write_text(script.read_text().replace('"OK"', '"OK, edited"'))
    edited = _run_job(cluster, out, root, ["python", "run_distributed.py", "--items", "1000"])
    assert edited.returncode == 0, job_failure(edited)
    record = _records(out)[-1]
    assert [(s["sent_files"], s["unchanged"]) for s in record["project"]["shipped"]] == [
        (1, 5),
        (1, 5),
    ]
    assert _lines_from(_merged(out, record), "OK, edited") == {"mini-red", "mini-yellow"}
    _nothing_left(cluster)


def _run_example(cluster, tmp_path: Path, example: str, steps: int) -> dict:
    """examples/<example>/train.py for `steps` steps on both hosts, succeeded: its record."""
    out = tmp_path / "out"
    project = _project(tmp_path, example)
    result = _run_job(
        cluster, out, project, ["python", "train.py", "--steps", str(steps)],
        "--linger", str(LINGER),
    )  # fmt: skip
    assert result.returncode == 0, job_failure(result)
    return _records(out)[-1]


def _per_rank(prom: Prometheus, metric: str, selector: str) -> dict[tuple[str, str], float]:
    """(rank, node) -> the last value of `metric{selector}` in the past 10 minutes."""
    query = f"last_over_time({metric}{{{selector}}}[10m])"
    return {(s.labels["rank"], s.labels["node"]): s.value for s in prom.query(query)}


RANKS = (("0", "mini-red"), ("1", "mini-yellow"))


def test_the_instrumented_example_reports_every_step_and_gradient_byte(minis, tmp_path):
    steps = 30
    record = _run_example(minis, tmp_path, "ddp_track", steps)
    assert record["summary"]["steps"] == steps and record["summary"]["target_steps"] == steps
    assert record["summary"]["allreduce_bytes"] == steps * GRAD_BYTES

    prom, job = pair_prometheus(minis), f'job_id="{record["job_id"]}"'
    assert _per_rank(prom, "trainer_steps_total", job) == dict.fromkeys(RANKS, steps)
    got = _per_rank(prom, "trainer_allreduce_bytes_total", job)
    assert got == dict.fromkeys(RANKS, steps * GRAD_BYTES)
    assert _per_rank(prom, "trainer_target_steps", job) == dict.fromkeys(RANKS, steps)
    _nothing_left(minis)


def test_the_plain_example_is_observed_without_a_line_of_code(minis, tmp_path):
    steps = 20
    source = (EXAMPLES / "ddp_plain" / "train.py").read_text()
    assert "import minicluster" not in source and "from minicluster" not in source
    record = _run_example(minis, tmp_path, "ddp_plain", steps)

    prom, job = pair_prometheus(minis), f'job_id="{record["job_id"]}"'
    # What the script sent: DDP's gradient all-reduce every step, and one 4-byte loss
    # all-reduce at each log step (10 and 20).
    got = _per_rank(prom, "trainer_allreduce_bytes_total", job)
    scraped = prom.query(f"max_over_time(up{{{job}}}[10m])")
    assert got == dict.fromkeys(RANKS, steps * GRAD_BYTES), [s.labels for s in scraped]
    selector = f'{job}, op="all_reduce"'
    assert _per_rank(prom, "trainer_collective_bytes_total", selector) == dict.fromkeys(RANKS, 8)
    assert _per_rank(prom, "trainer_collective_calls_total", selector) == dict.fromkeys(RANKS, 2)
    assert _per_rank(prom, "trainer_exit_code", job) == dict.fromkeys(RANKS, 0)
    assert record["summary"]["collectives"]["all_reduce"]["bytes"] == 8
    _nothing_left(minis)


def test_a_rank_that_raises_fails_the_job_with_its_traceback_and_leaves_nothing(minis, tmp_path):
    cluster = minis
    missing = "import a_module_nobody_wrote\n"
    root = _scripts(tmp_path / "boom", {"boom.py": BOOM, "missing.py": missing})
    out = tmp_path / "out"

    result = _run_job(cluster, out, root, ["python", "boom.py"])
    assert result.returncode not in (0, None), result.stdout[-3000:]
    record = _records(out)[-1]
    assert record["status"].startswith("failed")
    parsed = [p for p in map(parse_line, _merged(out, record)) if p]
    raised = [p for p in parsed if "ValueError: boom on purpose in rank 1" in p.message]
    assert {(p.node, p.rank) for p in raised} == {("mini-yellow", 1)}, parsed[-20:]
    assert any(p.level == "ERROR" and "Traceback" in p.message for p in parsed if p.rank == 1)
    _nothing_left(cluster)

    result = _run_job(cluster, out, root, ["python", "missing.py"])
    assert result.returncode not in (0, None)
    lines = _merged(out, _records(out)[-1])
    assert "mini-red" in _lines_from(lines, "No module named 'a_module_nobody_wrote'")
    _nothing_left(cluster)

    # A module that is not in the project: refused before anything ships or starts.
    result = _run_job(cluster, out, root, ["python", "-m", "not_here"])
    assert result.returncode == 2 and "no module not_here in" in result.stderr
    _nothing_left(cluster)


def test_minicluster_stop_stops_a_running_job_on_both_hosts(minis, tmp_path):
    cluster = minis
    root = _scripts(tmp_path / "sleeper", {"sleeper.py": SLEEPER})
    out = tmp_path / "out"
    launcher = subprocess.Popen(
        _run_job_argv(cluster, out, root, ["python", "sleeper.py"]),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: (
                any(r.get("status") == "running" for r in _records(out))
                if (out / "runs").exists()
                else False
            ),
            "the running job's record with its PIDs",
            timeout=180,
        )
        job = _records(out)[-1]["job_id"]
        for host in cluster.hosts.values():
            wait_until(
                lambda host=host: any(
                    "observe sleeper.py" in c and "torch.distributed.run" not in c
                    for c in _job_processes(cluster, host)
                ),
                f"a rank on {host.name}",
                timeout=180,
            )
        stop = subprocess.run(
            cli("stop", job, "--config", str(cluster.config_path), "--runs-dir", str(out / "runs")),
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert stop.returncode == 0, stop.stdout + stop.stderr
        # Each node's torchrun and the rank under it.
        for node in ("mini-red", "mini-yellow"):
            assert re.search(rf"^{node}: stopped PID \d+ and 1 children", stop.stdout, re.M)
        print(stop.stdout)
        _nothing_left(cluster)
        output, _ = launcher.communicate(timeout=120)
        assert launcher.returncode != 0, output[-2000:]
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)


def test_dependencies_install_once_and_a_missing_package_is_named_per_node(minis, tmp_path):
    cluster = minis
    root = _project(tmp_path, "sharding")
    out = tmp_path / "out"
    # psutil is in the node venv the job environment is layered on: nothing to download.
    (root / "requirements.txt").write_text("psutil\n")
    command = ["python", "-m", "src.tests.test_sharding"]
    first = _run_job(cluster, out, root, command, "--install-deps")
    assert first.returncode == 0, job_failure(first)
    assert "installed dependencies from requirements.txt" in first.stderr
    second = _run_job(cluster, out, root, command, "--install-deps")
    assert second.returncode == 0, job_failure(second)
    assert "dependencies from requirements.txt already installed" in second.stderr

    (root / "requirements.txt").write_text("minicluster-no-such-package==1.0\n")
    runs_before = len(_records(out))
    failed = _run_job(cluster, out, root, command, "--install-deps")
    assert failed.returncode == 1
    (line,) = [x for x in failed.stderr.splitlines() if x.startswith("not started")]
    for node in ("mini-red", "mini-yellow"):
        assert (
            f"{node}: installing dependencies: installing requirements.txt failed: "
            "No matching distribution found for minicluster-no-such-package==1.0"
        ) in line
    assert len(_records(out)) == runs_before  # no job was started
    _nothing_left(cluster)


def test_a_full_disk_on_one_host_is_named_and_nothing_starts(minis, tmp_path):
    cluster = minis
    root = _project(tmp_path, "sharding")
    (root / "weights.bin").write_bytes(os.urandom(256 * 1024))
    out = tmp_path / "out"
    jobs = "/opt/minicluster/jobs"
    # mini-yellow's job folder on a 64 kB file system: the project does not fit.
    cluster.yellow.run(f"mkdir -p {jobs} && mount -t tmpfs -o size=64k tmpfs {jobs}")
    try:
        result = _run_job(cluster, out, root, ["python", "run_distributed.py"])
    finally:
        cluster.yellow.run(f"umount {jobs}", check=False)
    assert result.returncode == 1, job_failure(result)
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("not started")]
    assert "mini-yellow: receiving the files: cannot write" in line
    assert "No space left on device" in line and "mini-red" not in line
    print(line)
    assert not (out / "runs").exists()  # no job was started
    _nothing_left(cluster)
