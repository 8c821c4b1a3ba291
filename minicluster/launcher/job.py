"""Run one job: start every node, stream and merge, show progress, stop, summarise.

The job's status is that of its nodes' torchruns: all exit 0 -> 0. The first node whose
torchrun exits non-zero has used up its restarts, so the job cannot finish: the other
nodes are stopped (rather than left to hang until the process-group timeout) and the
launcher exits with that node's status. Ctrl-C stops every node and exits 130.

runs/<job_id>.json (keys other tools added are kept): job_id, status ("succeeded",
"interrupted", "failed (<node> <reason>)"), exit_code, started_at, finished_at, cluster,
nodes, options (the overrides given), commands (node -> argv), pids (node -> torchrun's
PID there), summary (see summary.py), ranks (each rank's own summary), logs (merged file
and fetched rank files), notes, and failure {node, exit_code, at} when a node failed.
"""

from __future__ import annotations

import queue
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console

from minicluster.core import layout
from minicluster.core.config import Config
from minicluster.core.logformat import now_iso
from minicluster.launcher import clock
from minicluster.launcher.plan import JobOptions, UserJob, plan_job
from minicluster.launcher.progress import JobProgress
from minicluster.launcher.remote import (
    LauncherError,
    NodeProcess,
    SshSettings,
    fetch_rank_logs,
    local_python,
)
from minicluster.launcher.stream import MergedLine, MergedLog, read_rank_file, tag_line
from minicluster.launcher.summary import (
    link_speed_bytes,
    rank_summaries,
    summarize,
    summary_table,
    write_record,
)

EXIT_INTERRUPTED = 130


@dataclass
class JobSetup:
    config: Config
    options: JobOptions
    config_paths: dict[str, str]  # node name -> config.yaml as that node sees it
    logs_dir: Path = Path("logs")
    runs_dir: Path = Path("runs")
    ssh: SshSettings = field(default_factory=SshSettings)
    grace_seconds: float = 5.0
    verbose: bool = False
    user: UserJob | None = None  # a user's program instead of the built-in trainer
    project: dict | None = None  # what the record says about it (command, workdir, shipping)


@dataclass
class JobResult:
    job_id: str
    exit_code: int
    status: str
    log_path: Path
    record_path: Path
    summary: dict


@dataclass
class _Outcome:
    interrupted: bool = False
    failed_node: str | None = None
    failed_reason: str | None = None  # e.g. "exited with status 1"
    failed_code: int | None = None
    failed_at: str | None = None  # when the launcher saw the failing node's torchrun exit
    notes: list[str] = field(default_factory=list)
    pids_recorded: bool = False


def _record_pids(nodes: list[NodeProcess], setup: JobSetup, outcome: _Outcome) -> None:
    """Once every node's torchrun PID is known, runs/<job_id>.json has them while the job
    runs, so `minicluster stop JOB_ID` can stop it from another terminal."""
    if outcome.pids_recorded or any(n.pid is None for n in nodes):
        return
    outcome.pids_recorded = True
    write_record(
        setup.runs_dir,
        nodes[0].job_id,
        {
            "job_id": nodes[0].job_id,
            "status": "running",
            "cluster": setup.config.cluster.name,
            "nodes": [n.name for n in setup.config.nodes],
            "commands": {n.node.name: n.command.argv for n in nodes},
            "pids": {n.node.name: n.pid for n in nodes},
        },
    )


def _stop_all(nodes: list[NodeProcess], grace: float, progress: JobProgress) -> None:
    """Stop the nodes at the same time, so stopping takes one grace period, not one each."""
    if not nodes:
        return
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        for message in pool.map(lambda n: n.stop(grace), nodes):
            progress.print(message, style="yellow")


def _show(line: MergedLine, verbose: bool) -> bool:
    """Which lines appear above the progress bar: everything not an INFO rank line."""
    if verbose:
        return True
    return line.parsed is None or line.parsed.level != "INFO"


def _pump(
    nodes: list[NodeProcess],
    output: queue.Queue,
    log: MergedLog,
    progress: JobProgress,
    outcome: _Outcome,
    setup: JobSetup,
) -> None:
    open_streams = {n.node.name for n in nodes}
    while open_streams:
        try:
            name, text, arrival = output.get(timeout=0.2)
        except queue.Empty:
            pass
        else:
            if text is None:
                open_streams.discard(name)
            elif text.strip():
                line = tag_line(name, text, arrival)
                log.add(line)
                if line.parsed:
                    progress.observe(line.parsed)
                if _show(line, setup.verbose):
                    progress.print(line.text, style="dim" if line.parsed is None else None)
        log.flush(time.time())
        _record_pids(nodes, setup, outcome)
        if outcome.failed_node is None:
            for node in nodes:
                code = node.poll()
                if code not in (None, 0):
                    outcome.failed_node, outcome.failed_code = node.node.name, code
                    outcome.failed_at = now_iso()
                    outcome.failed_reason = (
                        "lost its ssh connection"
                        if node.connection_lost
                        else f"exited with status {code}"
                    )
                    progress.print(
                        f"{node.node.name}: torchrun {outcome.failed_reason}; "
                        "stopping the job on the other nodes",
                        style="red",
                    )
                    running = [n for n in nodes if n.poll() is None]
                    _stop_all(running, setup.grace_seconds, progress)
                    break


def _drain(output: queue.Queue, log: MergedLog) -> None:
    while True:
        try:
            name, text, arrival = output.get_nowait()
        except queue.Empty:
            return
        if text and text.strip():
            log.add(tag_line(name, text, arrival))


def _exit_code(nodes: list[NodeProcess], outcome: _Outcome) -> tuple[int, str]:
    if outcome.interrupted:
        return EXIT_INTERRUPTED, "interrupted"
    if outcome.failed_node is not None:
        code = outcome.failed_code or 1
        reason = outcome.failed_reason or f"exited with status {code}"
        return code, f"failed ({outcome.failed_node} {reason})"
    for node in nodes:
        code = node.wait(timeout=10)
        if code is None:
            return 1, f"failed ({node.node.name} did not exit)"
        if code != 0:
            return code, f"failed ({node.node.name} exited with status {code})"
    return 0, "succeeded"


def _collect_rank_files(
    setup: JobSetup, job_id: str, dest: Path, outcome: _Outcome, skip: set[str]
) -> list[Path]:
    files: list[Path] = []
    for node in setup.config.nodes:
        if node.name in skip:
            continue
        remote_dir = layout.job_log_dir(node, setup.config.trainer, job_id)
        try:
            files += fetch_rank_logs(node, remote_dir, dest, setup.ssh, timeout=30)
        except (LauncherError, OSError) as exc:
            outcome.notes.append(f"rank logs not fetched: {exc}")
    return files


def run_job(setup: JobSetup, out: Console, err: Console, job_id: str | None = None) -> JobResult:
    """Run the job to its end (or Ctrl-C); the summary goes to `out`, progress to `err`."""
    plan = plan_job(
        setup.config, setup.options, setup.config_paths, job_id, local_python(), setup.user
    )
    output: queue.Queue = queue.Queue()
    # The master first: its torchrun hosts the rendezvous store the others connect to.
    commands = sorted(plan.commands, key=lambda c: c.node.role != "master")
    nodes = [NodeProcess(c, plan.job_id, output, setup.ssh) for c in commands]
    log = MergedLog(setup.logs_dir / f"{plan.job_id}.log")
    outcome = _Outcome()
    started_at, started = now_iso(), time.monotonic()
    with JobProgress(plan.job_id, plan.target_steps, plan.world_size, err) as progress:
        progress.print(
            f"job {plan.job_id}: {plan.world_size} ranks on "
            + ", ".join(f"{c.node.name} ({c.node.address})" for c in commands)
            + f"; merged log {log.path}"
        )
        _run_nodes(nodes, output, log, progress, outcome, setup)
    target_steps = plan.target_steps or progress.ranks.target_steps
    wall = time.monotonic() - started
    exit_code, status = _exit_code(nodes, outcome)
    _drain(output, log)
    log.close()

    lost = [n for n in nodes if not n.reachable or n.connection_lost]
    outcome.notes += [_unreachable_note(n, plan.job_id, log.path) for n in lost]
    unreachable = {n.node.name for n in lost}
    rank_dir = setup.logs_dir / plan.job_id
    rank_files = _collect_rank_files(setup, plan.job_id, rank_dir, outcome, unreachable)
    if not outcome.interrupted:
        _note_clock_offsets(setup, log, outcome, unreachable)
    ranks = _rank_summaries(log, rank_files)
    summary = summarize(
        ranks,
        world_size=plan.world_size,
        target_steps=target_steps,
        wall_seconds=wall,
        link_speed_bytes=link_speed_bytes(setup.config) if ranks else None,
    )
    record = {
        "job_id": plan.job_id,
        "status": status,
        "exit_code": exit_code,
        "started_at": started_at,
        "finished_at": now_iso(),
        "cluster": setup.config.cluster.name,
        "nodes": [n.name for n in setup.config.nodes],
        "options": {k: v for k, v in asdict(setup.options).items() if v not in (None, False)},
        "commands": {c.node.name: c.argv for c in commands},
        **({"project": setup.project} if setup.project else {}),
        # torchrun's PID on each node: what `python -m minicluster.launcher.reap` stops.
        "pids": {n.node.name: n.pid for n in nodes if n.pid is not None},
        "summary": summary,
        "ranks": [ranks[r] for r in sorted(ranks)],
        "logs": {"merged": str(log.path), "ranks": [str(p) for p in rank_files]},
        "notes": outcome.notes,
    }
    if outcome.failed_at:
        record["failure"] = {
            "node": outcome.failed_node,
            "exit_code": outcome.failed_code,
            "at": outcome.failed_at,
        }
    record_path = write_record(setup.runs_dir, plan.job_id, record)
    for note in outcome.notes:
        err.print(f"note: {note}", style="yellow", markup=False, highlight=False)
    loopback = all(node.is_loopback for node in setup.config.nodes)
    out.print(summary_table(plan.job_id, status, summary, loopback=loopback))
    out.print(f"merged log: {log.path}  rank logs: {rank_dir}/  summary: {record_path}")
    return JobResult(plan.job_id, exit_code, status, log.path, record_path, summary)


def _run_nodes(
    nodes: list[NodeProcess],
    output: queue.Queue,
    log: MergedLog,
    progress: JobProgress,
    outcome: _Outcome,
    setup: JobSetup,
) -> None:
    """Start every node and pump their output until all have ended, failed or Ctrl-C."""
    try:
        for node in nodes:
            node.start()
        _pump(nodes, output, log, progress, outcome, setup)
    except KeyboardInterrupt:
        outcome.interrupted = True
        # A second Ctrl-C must not cut the stopping short and leave processes behind.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            progress.print("interrupted: stopping the job on every node", style="red")
            _stop_all([n for n in nodes if n.proc], setup.grace_seconds, progress)
        finally:
            signal.signal(signal.SIGINT, previous)
    except LauncherError as exc:
        outcome.failed_node, outcome.failed_code = "launcher", 1
        outcome.failed_reason = f"error: {exc}"
        progress.print(str(exc), style="red")
        _stop_all([n for n in nodes if n.proc], setup.grace_seconds, progress)


def _unreachable_note(node: NodeProcess, job_id: str, log_path: Path) -> str:
    n = node.node
    reaper = f"{n.venv_python} -m minicluster.launcher.reap --expect {job_id} {node.pid}"
    return (
        f"{n.name} could not be reached to stop the job; its ranks fail at their "
        f"process-group timeout, and what is left exits once the node can talk again. To "
        f"stop it by PID then: ssh {n.ssh_user}@{n.address} {reaper}. Its lines up to the "
        f"loss are in {log_path}; `minicluster logs {job_id}` fetches its rank files later."
    )


def _rank_summaries(log: MergedLog, rank_files: list[Path]) -> dict[int, dict]:
    """The ranks' summary lines from the stream, or from a rank's file if ssh lost it."""
    ranks = rank_summaries(line.parsed for line in log.lines if line.parsed)
    for path in rank_files:
        lines = (line.parsed for line in read_rank_file(path) if line.parsed)
        for rank, data in rank_summaries(lines).items():
            ranks.setdefault(rank, data)
    return ranks


def _note_clock_offsets(setup: JobSetup, log: MergedLog, outcome: _Outcome, skip: set[str]) -> None:
    remote = [n for n in setup.config.nodes if not n.is_loopback]
    if not remote:
        return
    offsets = []
    for node in setup.config.nodes:
        if node.name in skip:
            continue
        try:
            offsets.append(clock.measure(node, setup.ssh))
        except LauncherError as exc:
            outcome.notes.append(str(exc))
    # torchrun lines carry this machine's arrival time, not their node's clock.
    rank_lines = [line for line in log.lines if line.parsed is not None]
    note = clock.offset_note(rank_lines, offsets)
    if note:
        outcome.notes.append(note)
