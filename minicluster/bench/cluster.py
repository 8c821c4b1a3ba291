"""World size 1 against 2 across the configured nodes: the trainer on the master alone,
then on every node, ranks pinned one per core, and raw TCP between the first two nodes.

Each node's files go to bench/ under its install_dir (checkpoints off, discovery files
outside the exporter's run dir, so Prometheus does not scrape a bench), and its ranks
serve /metrics on 127.0.0.1 at the node's metrics base port + 50, clear of a running job.
"""

from __future__ import annotations

import time

from minicluster.bench.jobs import BenchRun, BenchSettings
from minicluster.bench.nodes import run_everywhere
from minicluster.core.config import Config, NodeSettings
from minicluster.core.layout import bench_dir
from minicluster.core.logformat import parse_line
from minicluster.launcher.remote import SshSettings
from minicluster.launcher.summary import rank_summaries, summarize

PORT_OFFSET = 50


def trainer_program(config: Config, settings: BenchSettings, job_id: str):
    def program(node: NodeSettings) -> list[str]:
        return [
            "minicluster.trainer", "--job-id", job_id, "--node", node.name,
            "--steps", str(settings.steps), "--batch-size", str(settings.batch_size),
            "--model", settings.model, "--device", settings.device,
            "--seed", str(settings.seed), "--metrics-address", "127.0.0.1",
            "--metrics-base-port", str(config.metrics_base_port(node) + PORT_OFFSET),
            "--checkpoint-interval", "0", "--linger", "0",
            "--checkpoint-dir", bench_dir(node, "checkpoints"),
            "--log-dir", bench_dir(node, "logs"), "--run-dir", bench_dir(node, "run"),
        ]  # fmt: skip

    return program


def first_nodes(config: Config, count: int) -> Config:
    """The config with its first `count` nodes (the master first)."""
    ordered = [config.master, *(n for n in config.nodes if n is not config.master)]
    return config.model_copy(update={"nodes": ordered[:count]})


def run_on_nodes(
    config: Config, settings: BenchSettings, label: str, ssh: SshSettings | None = None
) -> BenchRun:
    world = config.world_size
    job_id = f"{label}-ws{world}"
    started = time.monotonic()
    outputs = run_everywhere(
        config, trainer_program(config, settings, job_id), ssh, timeout=settings.timeout_seconds
    )
    wall = time.monotonic() - started
    lines = [p for out in outputs for p in map(parse_line, out.lines) if p]
    ranks = rank_summaries(lines)
    summary = summarize(
        ranks, world_size=world, target_steps=settings.steps, wall_seconds=wall,
        link_speed_bytes=None,
    )  # fmt: skip
    start = next(
        (ln.fields() for ln in lines if ln.rank == 0 and ln.message.startswith("start ")), {}
    )
    return BenchRun(world, job_id, summary, start, ranks, None)
