"""The built-in trainer on two simulated hosts, one rank each, read back from its summary."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bench.netns import torchrun_pair


def train_pair(
    lan, work: Path, steps: int, *flags: str, model: str = "mlp", batch_size: int = 32
) -> dict[int, dict]:
    """rank -> its `summary` fields, for a job with `flags` (e.g. --grad-compression)."""
    name = "-".join([model, *(f.strip("-") for f in flags)])
    program = [
        "minicluster.trainer", "--job-id", f"pair-{name}", "--steps", str(steps),
        "--batch-size", str(batch_size), "--model", model, "--device", "cpu", "--seed", "0",
        "--metrics-address", "127.0.0.1", "--metrics-base-port", "9470",
        "--checkpoint-interval", "0", "--linger", "0", "--log-interval", "1000",
        "--checkpoint-dir", str(work / name / "ckpt"), "--log-dir", str(work / name / "logs"),
        "--run-dir", str(work / name / "run"), *flags,
    ]  # fmt: skip
    outputs = torchrun_pair(lan, program)
    summaries = {}
    for text in outputs.values():
        for line in text.splitlines():
            at = line.find(" summary {")
            if at >= 0:
                data = json.loads(line[at + len(" summary ") :])
                summaries[data["rank"]] = data
    return summaries
