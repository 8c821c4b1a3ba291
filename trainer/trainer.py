"""The Trainer: build one rank, run the loop, log and checkpoint, then close.

Build order matters: the log file first (so even a failed start leaves a line), then the
process group, model, data and optimizer, then the checkpoint every node has (ranks
agree on it), then DDP or the staged path (both start every rank from rank 0's weights),
and last the metrics endpoint and the discovery file, so the first scrape already sees
the restored counters.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from minicluster.core import discovery
from minicluster.core.config import ConfigError
from minicluster.trainer.checkpoint import CheckpointStore, agree_on_resume_step, gather_counters
from minicluster.trainer.comm_hook import CountingHookState, counting_allreduce_hook
from minicluster.trainer.data import build_stream
from minicluster.trainer.distributed import init_distributed, rank_env, shutdown
from minicluster.trainer.logs import RankLog, compact_json
from minicluster.trainer.metrics import LossMeter, NullSink, PrometheusSink, RunInfo, RunStats
from minicluster.trainer.models import build_model, gradient_bytes, parameter_count
from minicluster.trainer.settings import CLI_SOURCE, RunSettings
from minicluster.trainer.staged import StagedAllReduce
from minicluster.trainer.step import TrainStep

CHECKPOINT_FORMAT = 1


def use_staged_path(grad_sync: str, device: torch.device) -> bool:
    if device.type == "mps" and grad_sync == "ddp":
        raise ConfigError(
            CLI_SOURCE, "--grad-sync", "gloo cannot all-reduce MPS tensors; use staged"
        )
    return grad_sync == "staged" or (grad_sync == "auto" and device.type == "mps")


class Trainer:
    def __init__(self, run: RunSettings):
        self.run = run
        self.env = rank_env()
        self.log = RankLog(run.job_log_dir, run.node, self.env.rank)
        self.sink = NullSink()
        self.stats: RunStats | None = None
        self.discovery_file: Path | None = None
        self.completed = False
        try:
            self._build()
        except BaseException as exc:
            self._log_failure(exc)
            self.close()
            raise

    # --- build --------------------------------------------------------------------------

    def _build(self) -> None:
        run, settings = self.run, self.run.trainer
        self.dist = init_distributed(settings.device, run.interface, settings.pg_timeout_seconds)
        self.env = env = self.dist.env
        device = self.device = self.dist.device
        # Collectives outside the model (resume, counters) use the backend's device.
        self.comm_device = device if self.dist.backend == "nccl" else torch.device("cpu")
        staged = use_staged_path(run.grad_sync, device)

        torch.manual_seed(settings.seed)
        self.model = build_model(settings).to(device)
        self.grad_bytes = gradient_bytes(self.model)
        self.stream = build_stream(
            settings.dataset_size,
            settings.seq_len,
            settings.vocab_size,
            settings.seed,
            settings.batch_size,
            env.rank,
            env.world_size,
        )
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=settings.learning_rate)
        self.stats = RunStats(target_steps=settings.steps, restarts=env.restart_count)
        self.stats.last_checkpoint_timestamp = time.time()
        if run.metrics_enabled:
            port = run.metrics_base_port + env.local_rank
            self.sink = PrometheusSink(run.metrics_address, port)
            self.stats.comm.on_latency = self.sink.observe_bucket

        self.store = CheckpointStore(run.job_checkpoint_dir)
        if env.local_rank == 0:
            self.store.remove_stale_temp_files()
        self.resume_step = self._resume()

        self.staged: StagedAllReduce | None = None
        if staged:
            self.staged = StagedAllReduce(self.model, self.stats.comm)
            train_model = self.model
        else:
            device_ids = [device.index] if device.type == "cuda" else None
            train_model = DistributedDataParallel(self.model, device_ids=device_ids)
            if run.metrics_enabled:
                state = CountingHookState(process_group=None, stats=self.stats.comm)
                train_model.register_comm_hook(state, counting_allreduce_hook)
        # Without the hook (DDP and --no-metrics) nothing counts the all-reduce.
        self.comm_counted = run.metrics_enabled or staged
        self.train_step = TrainStep(
            train_model, self.optimizer, self.stream, device, self.stats, self.staged
        )

        self.info = RunInfo(
            job_id=run.job_id,
            world_size=env.world_size,
            backend=self.dist.backend,
            device=device.type,
            model=settings.model,
            parameters=parameter_count(self.model),
        )
        self.sink.start(self.stats, self.info)
        if self.sink.target is not None:
            entry = discovery.RankEntry(
                job_id=run.job_id,
                rank=env.rank,
                local_rank=env.local_rank,
                node=run.node,
                target=self.sink.target,
                pid=os.getpid(),
            )
            self.discovery_file = discovery.register(run.run_dir, entry)
        self.log.info(
            "start",
            job_id=run.job_id,
            world_size=env.world_size,
            backend=self.dist.backend,
            device=device.type,
            model=settings.model,
            params=self.info.parameters,
            grad_bytes=self.grad_bytes,
            restart=env.restart_count,
            resume_step=self.resume_step,
        )
        self.log.info(
            "distributed",
            gloo_socket_ifname=os.environ.get("GLOO_SOCKET_IFNAME", "-"),
            pg_timeout_seconds=settings.pg_timeout_seconds,
        )

    def _resume(self) -> int:
        step = agree_on_resume_step(self.store, self.comm_device)
        if step == 0:
            return 0
        state = self.store.load(step, self.device)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.stream.load_state_dict(state["data"])
        counters = state["counters"]
        # A changed world size (elastic restart) leaves no row for new ranks; rank 0's
        # step, sample and byte totals are the same as everyone's.
        self.stats.restore(
            counters[self.env.rank] if self.env.rank < len(counters) else counters[0]
        )
        self.stats.epoch = self.stream.epoch
        self.stats.last_checkpoint_step = step
        self.stats.last_checkpoint_timestamp = float(state["saved_at"])
        return step

    # --- the loop -------------------------------------------------------------------------

    def train(self) -> None:
        settings, stats = self.run.trainer, self.stats
        meter = LossMeter()
        interval_wall, interval_samples = 0.0, 0
        clock = time.perf_counter
        try:
            while stats.steps < settings.steps:
                started = clock()
                loss = self.train_step()
                self.sink.observe_step(clock() - started)
                stats.steps += 1
                stats.samples += settings.batch_size
                stats.epoch = self.stream.epoch
                stats.last_step_timestamp = time.time()
                meter.add(loss)
                interval_samples += settings.batch_size
                last = stats.steps == settings.steps
                log_now = stats.steps % settings.log_interval == 0 or last
                if log_now:
                    self._log_step(meter, interval_samples / (interval_wall + clock() - started))
                interval = settings.checkpoint_interval
                if interval and (stats.steps % interval == 0 or last):
                    self._checkpoint()
                spent = clock() - started  # --step-sleep is not training time
                stats.wall_seconds += spent
                interval_wall = 0.0 if log_now else interval_wall + spent
                interval_samples = 0 if log_now else interval_samples
                if self.run.step_sleep_seconds:
                    time.sleep(self.run.step_sleep_seconds)
            stats.finished = True
            self.completed = True
            self.log.info("summary " + compact_json(self.summary()))
        except BaseException as exc:
            self._log_failure(exc)
            raise

    def _log_step(self, meter: LossMeter, samples_per_second: float) -> None:
        stats = self.stats
        loss = meter.mean()
        stats.loss = loss
        self.log.info(
            "step",
            step=stats.steps,
            target=stats.target_steps,
            epoch=stats.epoch,
            loss=f"{loss:.4f}",
            samples_per_second=f"{samples_per_second:.1f}",
        )

    def _checkpoint(self) -> None:
        stats, started = self.stats, time.perf_counter()
        counters = gather_counters(stats.counters(), self.comm_device)
        if self.env.local_rank == 0:  # one writer per node; every node writes
            state = {
                "format": CHECKPOINT_FORMAT,
                "job_id": self.run.job_id,
                "step": stats.steps,
                "world_size": self.env.world_size,
                "saved_at": time.time(),
                "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "optimizer": self.optimizer.state_dict(),
                "data": self.stream.state_dict(),
                "counters": counters,
            }
            self.store.save(stats.steps, state)
            self.store.prune()
        stats.checkpoint_seconds = time.perf_counter() - started
        stats.last_checkpoint_step = stats.steps
        stats.last_checkpoint_timestamp = time.time()

    def summary(self) -> dict:
        stats, counted = self.stats, self.comm_counted
        return {
            "job_id": self.run.job_id,
            "rank": self.env.rank,
            "world_size": self.env.world_size,
            "steps": stats.steps,
            "samples": stats.samples,
            "wall_seconds": round(stats.wall_seconds, 6),
            "phase_seconds": {k: round(v, 6) for k, v in stats.phase_seconds.items()},
            "allreduce_calls": stats.comm.calls if counted else None,
            "allreduce_bytes": stats.comm.bytes if counted else None,
            "allreduce_seconds": round(stats.comm.seconds, 6) if counted else None,
            "grad_bytes": self.grad_bytes,
            "restarts": stats.restarts,
            "final_loss": stats.loss,
        }

    # --- the end --------------------------------------------------------------------------

    def close(self) -> None:
        """Leave the group; after a finished job keep /metrics up for `linger` seconds."""
        try:
            if self.completed:
                shutdown()
                _linger(self.run.trainer.linger_seconds if self.sink.target else 0.0)
        finally:
            if self.discovery_file is not None:
                discovery.unregister(self.discovery_file)
                self.discovery_file = None
            self.sink.close()
            self.log.close()

    def _log_failure(self, exc: BaseException) -> None:
        self.log.error(
            "failed",
            restart=self.env.restart_count,
            step=self.stats.steps if self.stats else 0,
            error=type(exc).__name__,
            reason=json.dumps(str(exc)[:500]),
        )


def _linger(seconds: float) -> None:
    """Wait, but end early on SIGTERM/SIGINT (torchrun or launchd stopping the job)."""
    if seconds <= 0:
        return
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        stop.wait(seconds)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
