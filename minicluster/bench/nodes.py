"""Bench programs on the configured nodes, started the way run-job starts the trainer.

`run_everywhere` runs one module under torchrun on every node (the launcher's plan: c10d
rendezvous at the master, `--local-addr` and GLOO_SOCKET_IFNAME from the node's address
and interface; ssh for remote nodes, a child process for loopback ones) with each rank
pinned to its own core (minicluster.bench.pin). `tcp_between` measures raw TCP from the
first node to the second over the same addresses, in the same run.
"""

from __future__ import annotations

import queue
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from minicluster.bench import tcp
from minicluster.core.config import Config, NodeSettings
from minicluster.launcher.plan import NodeCommand, new_job_id, node_env, torchrun_argv
from minicluster.launcher.remote import NodeProcess, SshSettings, local_python

PIN_MODULE = "minicluster.bench.pin"


class NodesError(Exception):
    """A bench program failed on a node; the message names it and shows its last lines."""


@dataclass
class NodeOutput:
    name: str
    code: int | None
    lines: list[str]


def _python(node: NodeSettings) -> str:
    return local_python() if node.is_loopback else node.venv_python


def _env(node: NodeSettings) -> dict[str, str]:
    # run-job's environment (the interface for gloo, the stores on the node's address),
    # and one thread per rank: the ranks are pinned one per core.
    return {**node_env(node), "OMP_NUM_THREADS": "1"}


def bench_commands(
    config: Config,
    module: list[str] | Callable[[NodeSettings], list[str]],
    job_id: str,
    pin: bool = True,
) -> list[NodeCommand]:
    """One torchrun per node running `module` (a module name and its arguments, or a
    function of the node that returns them)."""
    per_node = config.trainer.nproc_per_node
    commands = []
    for index, node in enumerate(config.nodes):
        argv = torchrun_argv(config, node, job_id, _python(node))
        program = module(node) if callable(module) else module
        # Nodes sharing this machine (loopback) get distinct cores through the offset.
        offset = index * per_node if node.is_loopback else 0
        program = [PIN_MODULE, "--cpu-offset", str(offset), *program] if pin else program
        commands.append(NodeCommand(node=node, argv=[*argv, *program], env=_env(node)))
    return commands


def _collect(
    commands: list[NodeCommand], ssh: SshSettings, job_id: str, timeout: float
) -> list[NodeOutput]:
    output: queue.Queue = queue.Queue()
    processes = [NodeProcess(command, job_id, output, ssh) for command in commands]
    lines: dict[str, list[str]] = {p.node.name: [] for p in processes}
    open_streams = len(processes)
    deadline = time.monotonic() + timeout
    try:
        for process in processes:
            process.start()
        while open_streams:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NodesError(f"no result within {timeout:.0f}s")
            try:
                name, line, _ = output.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            if line is None:
                open_streams -= 1
            else:
                lines[name].append(line)
        codes = [p.wait(timeout=30) for p in processes]
    except BaseException:
        for process in processes:
            if process.poll() is None:
                process.stop(grace=3)
        raise
    return [
        NodeOutput(p.node.name, code, lines[p.node.name])
        for p, code in zip(processes, codes, strict=True)
    ]


def run_everywhere(
    config: Config,
    module: list[str] | Callable[[NodeSettings], list[str]],
    ssh: SshSettings | None = None,
    pin: bool = True,
    timeout: float = 900.0,
) -> list[NodeOutput]:
    """Run `module` under torchrun on every node; every node must exit 0."""
    job_id = f"bench-{new_job_id()}"
    commands = bench_commands(config, module, job_id, pin)
    results = _collect(commands, ssh or SshSettings(), job_id, timeout)
    for result in results:
        if result.code != 0:
            tail = "\n".join(result.lines[-15:])
            raise NodesError(f"{result.name}: exit status {result.code}; last lines:\n{tail}")
    return results


def _run_on(
    node: NodeSettings, argv: list[str], ssh: SshSettings, timeout: float
) -> subprocess.CompletedProcess:
    if node.is_loopback:
        return subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    return ssh.run(node, argv, timeout=timeout)


def tcp_between(config: Config, seconds: float, ssh: SshSettings | None = None) -> tcp.TcpResult:
    """Raw TCP from the first node to the second node's address (one stream), or on
    loopback when every node is this machine."""
    if len(config.nodes) < 2 or all(node.is_loopback for node in config.nodes):
        return tcp.measure(config.nodes[0].address, seconds)
    ssh = ssh or SshSettings()
    sender_node, receiver_node = config.nodes[0], config.nodes[1]
    job_id = f"bench-tcp-{new_job_id()}"
    output: queue.Queue = queue.Queue()
    receiver = NodeProcess(
        NodeCommand(
            receiver_node,
            [_python(receiver_node), "-m", "minicluster.bench.tcp", "serve", receiver_node.address],
            {"PYTHONUNBUFFERED": "1"},
        ),
        job_id,
        output,
        ssh,
    )
    receiver.start()
    lines: list[str] = []
    deadline = time.monotonic() + 60
    port = None
    try:
        while port is None:
            try:
                _, line, _ = output.get(timeout=1.0)
            except queue.Empty:
                line = ""
            if line is None or time.monotonic() > deadline:
                raise NodesError(
                    f"{receiver_node.name}: the TCP receiver did not start: " + " | ".join(lines)
                )
            lines.append(line)
            if line.startswith(tcp.LISTENING):
                port = int(line.removeprefix(tcp.LISTENING))
        argv = [_python(sender_node), "-m", "minicluster.bench.tcp", "send"]
        argv += [receiver_node.address, str(port), "--seconds", str(seconds)]
        sent = _run_on(sender_node, argv, ssh, timeout=seconds + 60)
        if sent.returncode != 0:
            detail = sent.stderr.decode(errors="replace").strip().splitlines()
            reason = detail[-1] if detail else f"exit status {sent.returncode}"
            raise NodesError(f"{sender_node.name}: TCP sender failed: {reason}")
        if receiver.wait(timeout=seconds + 60) is None:
            raise NodesError(f"{receiver_node.name}: the TCP receiver did not finish")
        while True:
            try:
                _, line, _ = output.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                lines.append(line)
    finally:
        if receiver.poll() is None:
            receiver.stop(grace=2)
    result = tcp.parse_result(lines)
    if result is None:
        raise NodesError(f"{receiver_node.name}: no TCP result: " + " | ".join(lines[-5:]))
    return result
