"""Benchmark: the all-reduce and gradient compression on shaped 1 and 10 Gbit/s links.

    sudo .venv/bin/python bench/shaped_links.py [--rates 1gbit,10gbit] [--steps 60]
                                                 [--out runs/shaped-links.json]

Two simulated hosts (network namespaces on the test bridge, tests/hosts), one rank each,
pinned to separate cores, gloo on their `en0`, the link shaped with tc tbf
(tests/hosts/shaping.py). Per rate, in one run:

- raw TCP, one stream, host 1 to host 2 (minicluster.bench.tcp);
- the all-reduce sweep 4 KB to 256 MB (minicluster.bench.sweep), busbw as a share of it;
- the built-in trainer (default: transformer, batch 8 per rank, communication-bound on
  1 Gbit/s) with each gradient compression: bytes and
  all-reduce time per step, the comm phase per step, the final loss.

Needs root (namespaces, tc). Prints a markdown table per rate and writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minicluster.bench import sweep
from minicluster.bench.advice import large_share
from tests.bench.netns import lan_pair, tcp_probe, torchrun_pair
from tests.bench.trainer_pair import train_pair
from tests.hosts.shaping import shaped

CHOICES = ("none", "fp16", "bf16", "powersgd")


def per_step(summary: dict, key: str) -> float:
    return (summary.get(key) or 0) / summary["steps"]


def measure_rate(lan, rate: str, steps: int, work: Path, model: str, batch: int) -> dict:
    with shaped(lan, rate):
        link = tcp_probe(lan, seconds=3.0)
        out = torchrun_pair(lan, ["minicluster.bench.sweep"])
        rows = [asdict(r) for text in out.values() for r in sweep.parse_rows(text.splitlines())]
        training = {}
        for name in CHOICES:
            ranks = train_pair(
                lan, work / rate, steps, "--grad-compression", name, model=model, batch_size=batch
            )
            r0 = ranks[0]
            training[name] = {
                "bytes_per_step": per_step(r0, "allreduce_bytes"),
                "allreduce_seconds_per_step": max(
                    per_step(r, "allreduce_seconds") for r in ranks.values()
                ),
                "comm_phase_seconds_per_step": max(
                    r["phase_seconds"].get("comm", 0.0) / r["steps"] for r in ranks.values()
                ),
                "step_seconds": max(r["wall_seconds"] / r["steps"] for r in ranks.values()),
                "final_loss": r0["final_loss"],
                "grad_bytes": r0["grad_bytes"],
            }
    return {
        "rate": rate,
        "tcp_bytes_per_second": link.bytes_per_second,
        "sweep": rows,
        "large_share": large_share(rows, link.bytes_per_second),
        "training": training,
        "model": model,
        "batch_size": batch,
    }


def markdown(result: dict) -> str:
    tcp = result["tcp_bytes_per_second"]
    lines = [
        f"### {result['rate']}: raw TCP {tcp / 1e6:.1f} MB/s ({tcp * 8 / 1e9:.3f} Gbit/s)",
        "",
        "| size | time | algbw | busbw | busbw / TCP |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["sweep"]:
        lines.append(
            f"| {r['size'] // 1024} KB | {r['seconds'] * 1e3:.2f} ms | {r['algbw'] / 1e6:.1f} MB/s"
            f" | {r['busbw'] / 1e6:.1f} MB/s | {r['busbw'] / tcp:.1%} |"
        )
    base = result["training"]["none"]
    lines += [
        "",
        "| compression | bytes/step | all-reduce ms/step | comm phase ms/step | step ms | "
        "final loss | vs none |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, t in result["training"].items():
        lines.append(
            f"| {name} | {t['bytes_per_step']:.0f} | {t['allreduce_seconds_per_step'] * 1e3:.2f} |"
            f" {t['comm_phase_seconds_per_step'] * 1e3:.2f} | {t['step_seconds'] * 1e3:.2f} |"
            f" {t['final_loss']:.4f} | {t['final_loss'] / base['final_loss'] - 1:+.2%} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="1gbit,10gbit")
    parser.add_argument("--steps", type=int, default=60)
    # The transformer's 6.5 MB of gradients with a small batch: communication-bound on 1 GbE.
    parser.add_argument("--model", default="transformer")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("runs/shaped-links.json"))
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp, lan_pair() as lan:
        for rate in args.rates.split(","):
            result = measure_rate(lan, rate, args.steps, Path(tmp), args.model, args.batch_size)
            print(markdown(result) + "\n", flush=True)
            results.append(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
