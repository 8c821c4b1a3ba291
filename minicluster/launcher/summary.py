"""The end-of-job summary, built from the ranks' `summary <json>` lines.

Printed as a table and stored under "summary" in runs/<job_id>.json (other keys in that
file, e.g. from `minicluster report`, are kept). Figures:

- samples/s: all ranks' samples over the longest rank wall time;
- step time by phase: per-step mean over ranks of each phase (core.metrics.PHASES);
- communication fraction: core.metrics' definition (communication phases, comm and MPS
  staging, over all phases) per rank from its totals, and for the job that of the
  least-communicating rank: the same figure as the recording rule
  job:trainer_comm_fraction:min and the TrainerCommunicationBound alert;
- all-reduce bus bandwidth: core.metrics.busbw_factor (nccl-tests' algbw x 2(n-1)/n) with
  algbw = bytes all-reduced / seconds in all-reduce, so it compares directly with the link
  speed (the exporters' node_network_speed_bytes of each node's training interface, when
  known).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table

from minicluster.core.config import Config
from minicluster.core.controlpki import MissingCredentials, pki_paths
from minicluster.core.logformat import LogLine
from minicluster.core.metrics import PHASES, busbw_factor, comm_fraction, job_comm_fraction


def rank_summaries(lines: Iterable[LogLine]) -> dict[int, dict]:
    """rank -> the trainer's summary dict (the last one a rank printed)."""
    found: dict[int, dict] = {}
    for line in lines:
        word, _, rest = line.message.partition(" ")
        if word != "summary":
            continue
        try:
            data = json.loads(rest)
        except ValueError:
            continue
        if isinstance(data, dict):
            found[int(data.get("rank", line.rank))] = data
    return found


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _number(rank: dict, key: str) -> float | None:
    value = rank.get(key)
    return float(value) if isinstance(value, int | float) else None


def _mean_of(ranks: list[dict], key: str) -> float | None:
    """The mean over the ranks that report `key`; None when none does."""
    values = [v for v in (_number(r, key) for r in ranks) if v is not None]
    return _mean(values) if values else None


def summarize(
    ranks: dict[int, dict],
    *,
    world_size: int,
    target_steps: int,
    wall_seconds: float,
    link_speed_bytes: float | None,
) -> dict:
    reported = [ranks[r] for r in sorted(ranks)]
    summary: dict = {
        "ranks_reported": len(reported),
        "world_size": world_size,
        "target_steps": target_steps,
        "wall_seconds": round(wall_seconds, 3),
        "link_speed_bytes_per_second": link_speed_bytes,
    }
    if not reported:
        return summary
    steps = min(int(_number(r, "steps") or 0) for r in reported)
    train_seconds = max(_number(r, "wall_seconds") or 0.0 for r in reported)
    samples = int(sum(_number(r, "samples") or 0 for r in reported))
    phase_per_step = {
        phase: _mean(
            [
                float((r.get("phase_seconds") or {}).get(phase) or 0.0)
                / max(int(_number(r, "steps") or 0), 1)
                for r in reported
            ]
        )
        for phase in PHASES
    }
    step_seconds = sum(phase_per_step.values())
    # Without metrics (--no-metrics) the ranks count no all-reduces: those stay None.
    ar_calls = _mean_of(reported, "allreduce_calls")
    ar_bytes = _mean_of(reported, "allreduce_bytes")
    ar_seconds = _mean_of(reported, "allreduce_seconds")
    algbw = ar_bytes / ar_seconds if ar_bytes is not None and ar_seconds else None
    n = int(_number(reported[0], "world_size") or world_size)
    busbw = algbw * busbw_factor(n) if algbw is not None and n > 1 else None
    fractions = {rank: comm_fraction(ranks[rank].get("phase_seconds") or {}) for rank in ranks}
    summary.update(
        {
            "steps": steps,
            "samples": samples,
            "train_seconds": round(train_seconds, 3),
            "samples_per_second": samples / train_seconds if train_seconds > 0 else None,
            "step_seconds": step_seconds,
            "phase_seconds_per_step": phase_per_step,
            "comm_fraction": job_comm_fraction(fractions),
            "comm_fraction_by_rank": {str(rank): fractions[rank] for rank in sorted(fractions)},
            "allreduce_calls": int(ar_calls) if ar_calls is not None else None,
            "allreduce_bytes": int(ar_bytes) if ar_bytes is not None else None,
            "allreduce_seconds": ar_seconds,
            "allreduce_algbw_bytes_per_second": algbw,
            "allreduce_busbw_bytes_per_second": busbw,
            "busbw_link_ratio": (
                busbw / link_speed_bytes if busbw is not None and link_speed_bytes else None
            ),
            "grad_bytes": int(_number(reported[0], "grad_bytes") or 0),
            "restarts": max(int(_number(r, "restarts") or 0) for r in reported),
            "final_loss": reported[0].get("final_loss"),
        }
    )
    collectives = _collectives(reported)
    if collectives:
        summary["collectives"] = collectives
    exits = {str(r): ranks[r]["exit_status"] for r in sorted(ranks) if "exit_status" in ranks[r]}
    if exits:
        summary["exit_status_by_rank"] = exits
    return summary


def _collectives(reported: list[dict]) -> dict[str, dict]:
    """Per collective op (a user's program observed without code): the mean per rank of
    calls, bytes and seconds, as the ranks' `collectives` summaries counted them."""
    ops = sorted({op for r in reported for op in (r.get("collectives") or {})})
    found = {}
    for op in ops:
        per_rank = [(r.get("collectives") or {}).get(op) or {} for r in reported]
        found[op] = {
            key: _mean([float(c.get(key) or 0) for c in per_rank])
            for key in ("calls", "bytes", "seconds")
        }
    return found


def _speed_of(metrics_text: str, device: str) -> float | None:
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "node_network_speed_bytes":
            continue
        for sample in family.samples:
            if sample.labels.get("device") == device and sample.value > 0:
                return sample.value
    return None


def _exporter_access(config: Config) -> tuple[str, dict] | None:
    """The scheme and requests options that read this cluster's exporters, or None when
    this machine lacks the operator's client certificate (the speed then stays unknown)."""
    if not config.security.tls:
        return "http", {}
    # Exporters require a client certificate signed by the cluster CA, and present one too.
    try:
        return "https", pki_paths(config).client_tls("operator")
    except MissingCredentials:
        return None


def link_speed_bytes(config: Config, timeout: float = 2.0) -> float | None:
    """The slowest known training-interface speed among the nodes, from their exporters."""
    access = _exporter_access(config)
    if access is None:
        return None
    scheme, options = access
    speeds = []
    for node in config.nodes:
        host = f"[{node.address}]" if ":" in node.address else node.address
        try:
            url = f"{scheme}://{host}:{node.exporter_port}/metrics"
            response = requests.get(url, timeout=timeout, **options)
            response.raise_for_status()
        except requests.RequestException:
            continue  # not deployed or not answering: the speed stays unknown
        speed = _speed_of(response.text, node.interface)
        if speed:
            speeds.append(speed)
    return min(speeds) if speeds else None


def write_record(runs_dir: Path, job_id: str, record: dict) -> Path:
    """Add `record`'s keys to runs/<job_id>.json (atomically), keeping any others."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / f"{job_id}.json"
    existing: dict = {}
    if path.exists():
        try:
            existing = json.loads(path.read_text())
        except ValueError:
            existing = {}
    existing.update(record)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(existing, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


# --- presentation --------------------------------------------------------------------------


def _rate(value: float | None) -> str:
    if value is None:
        return "unknown"
    for unit, size in (("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value:.0f} B/s"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _comm_fraction_text(summary: dict) -> str:
    fraction = summary["comm_fraction"]
    if fraction is None:
        return "unknown"
    known = [f for f in (summary.get("comm_fraction_by_rank") or {}).values() if f is not None]
    if len(known) < 2:
        return f"{fraction:.1%}"
    return f"{fraction:.1%} (least-communicating rank; ranks {min(known):.1%} to {max(known):.1%})"


def summary_table(job_id: str, status: str, summary: dict, loopback: bool = False) -> Table:
    """`loopback`: every rank ran on this machine, so no link speed bounds the bandwidth."""
    table = Table(title=f"job {job_id}: {status}", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("wall time", f"{summary['wall_seconds']:.1f} s (launch to exit)")
    table.add_row("ranks reported", f"{summary['ranks_reported']}/{summary['world_size']}")
    if "steps" not in summary:
        return table
    if summary.get("collectives"):
        table.add_row(
            "collectives",
            "; ".join(
                f"{op} {c['calls']:.0f} calls, {c['bytes']:.0f} B, {_ms(c['seconds'])}"
                for op, c in summary["collectives"].items()
            )
            + " (per rank)",
        )
    if not summary["steps"] and not summary["target_steps"]:
        return table  # a program that reports no steps: no step figures to show
    table.add_row("steps", f"{summary['steps']}/{summary['target_steps']}")
    sps = summary["samples_per_second"]
    table.add_row(
        "samples/s",
        f"{sps:.1f} ({summary['samples']} samples in {summary['train_seconds']:.1f} s)"
        if sps
        else "unknown",
    )
    phases = summary["phase_seconds_per_step"]
    breakdown = ", ".join(f"{p} {_ms(s)}" for p, s in phases.items() if s > 0)
    table.add_row("step time", f"{_ms(summary['step_seconds'])} = {breakdown}")
    table.add_row("comm fraction", _comm_fraction_text(summary))
    busbw = summary["allreduce_busbw_bytes_per_second"]
    link = summary["link_speed_bytes_per_second"]
    against = ""
    if link and busbw:
        against = f" = {summary['busbw_link_ratio']:.1%} of link {_rate(link)}"
    if summary["allreduce_bytes"] is None:
        if not summary.get("collectives"):
            table.add_row("all-reduce", "not counted (the ranks ran with --no-metrics)")
    else:
        table.add_row(
            "all-reduce",
            f"{summary['allreduce_calls']} calls, {summary['allreduce_bytes']} bytes, "
            f"bus bandwidth {_rate(busbw)}{against}"
            + ("" if link else " (link: loopback)" if loopback else " (link speed unknown)"),
        )
    table.add_row("restarts", str(summary["restarts"]))
    if summary.get("final_loss") is not None:
        table.add_row("final loss", f"{summary['final_loss']:.4f}")
    return table
