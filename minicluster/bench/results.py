"""The comparison `minicluster bench` reports: world size 1 against N, and the link.

- samples/s of each run, speedup and scaling efficiency. The batch per rank is fixed
  (weak scaling), so perfect scaling is N times the samples/s: efficiency = speedup / N.
- step time by phase (ms per step) and the communication fraction of each run;
- the all-reduce algorithm and its bus bandwidth (nccl-tests' busbw, computed by the
  launcher's summary) against the raw TCP throughput of the same link in the same run.
"""

from __future__ import annotations

import os
import platform
import socket
from dataclasses import asdict

import torch

from minicluster.bench.jobs import BenchRun, BenchSettings
from minicluster.bench.tcp import TcpResult

# What each backend's all-reduce does for dense CPU tensors, and so which busbw factor
# applies. gloo's allreduce (gloo/allreduce.cc) is a ring: reduce-scatter then all-gather,
# each rank sending 2(n-1)/n of the buffer, which is the factor busbw uses.
ALGORITHMS = {
    "gloo": "ring (gloo: reduce-scatter + all-gather), busbw = algbw x 2(n-1)/n",
    "nccl": "ring or tree (NCCL picks per size), busbw = algbw x 2(n-1)/n",
}


def algorithm_of(backend: str | None) -> str:
    return ALGORITHMS.get(backend or "", f"{backend or 'unknown'} (bus bandwidth as ring)")


def host_facts() -> dict:
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def _run_row(run: BenchRun) -> dict:
    s = run.summary
    return {
        "world_size": run.world_size,
        "job_id": run.job_id,
        "steps": s.get("steps"),
        "samples": s.get("samples"),
        "train_seconds": s.get("train_seconds"),
        "samples_per_second": s.get("samples_per_second"),
        "step_seconds": s.get("step_seconds"),
        "phase_seconds_per_step": s.get("phase_seconds_per_step", {}),
        "comm_fraction": s.get("comm_fraction"),
        "allreduce_calls": s.get("allreduce_calls"),
        "allreduce_bytes": s.get("allreduce_bytes"),
        "allreduce_seconds": s.get("allreduce_seconds"),
        "allreduce_algbw_bytes_per_second": s.get("allreduce_algbw_bytes_per_second"),
        "allreduce_busbw_bytes_per_second": s.get("allreduce_busbw_bytes_per_second"),
        "final_loss": s.get("final_loss"),
    }


def compare(
    base: BenchRun, scaled: BenchRun, tcp: TcpResult, settings: BenchSettings, started_at: str
) -> dict:
    """Everything report.md and the plots show, as plain JSON-able data."""
    sps1 = base.summary.get("samples_per_second") or 0.0
    sps2 = scaled.summary.get("samples_per_second") or 0.0
    speedup = sps2 / sps1 if sps1 else None
    factor = scaled.world_size / base.world_size
    busbw = scaled.summary.get("allreduce_busbw_bytes_per_second")
    backend = scaled.start.get("backend") or base.start.get("backend")
    return {
        "started_at": started_at,
        "settings": asdict(settings),
        "machine": host_facts(),
        "model": {
            "name": scaled.start.get("model", settings.model),
            "parameters": _int(scaled.start.get("params")),
            "grad_bytes": scaled.summary.get("grad_bytes"),
            "backend": backend,
            "device": scaled.start.get("device"),
        },
        "runs": [_run_row(base), _run_row(scaled)],
        "speedup": speedup,
        "scaling_efficiency": speedup / factor if speedup is not None else None,
        "allreduce_algorithm": algorithm_of(backend),
        "tcp": {
            "address": tcp.address,
            "bytes": tcp.bytes,
            "seconds": tcp.seconds,
            "bytes_per_second": tcp.bytes_per_second,
        },
        "busbw_tcp_ratio": busbw / tcp.bytes_per_second if busbw and tcp.bytes_per_second else None,
    }


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
