"""The Trainer: build one rank, run the loop, log and checkpoint, then close.

The trainer is one user of minicluster.track: the tracker publishes its metrics, serves
the endpoint, registers the discovery file, prints the `start`, `step` and `summary`
lines and lingers for the final scrape, exactly as for a user's own script.

Build order matters: the log file first (so even a failed start leaves a line), then the
process group, model, data and optimizer, then the checkpoint every node has (ranks
agree on it) restored into the stats, then the tracker (so the first scrape already sees
the restored counters), then DDP or the staged path (both start every rank from rank 0's
weights), watched by the tracker.
"""

from __future__ import annotations

import json
import os
import time

import torch
from torch.nn.parallel import DistributedDataParallel

from minicluster import track
from minicluster.core.config import ConfigError
from minicluster.track.compression import hook_for as compression_hook
from minicluster.track.log import RankLog
from minicluster.track.settings import TrackSettings
from minicluster.track.stats import RunInfo, RunStats
from minicluster.track.tracker import Tracker
from minicluster.trainer.checkpoint import CheckpointStore, agree_on_resume_step, gather_counters
from minicluster.trainer.data import build_stream
from minicluster.trainer.distributed import init_distributed, rank_env, shutdown
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
        self.stats: RunStats | None = None
        self.track: Tracker | None = None
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

        self.store = CheckpointStore(run.job_checkpoint_dir)
        if env.local_rank == 0:
            self.store.remove_stale_temp_files()
        self.resume_step = self._resume()

        info = RunInfo(
            job_id=run.job_id,
            world_size=env.world_size,
            backend=self.dist.backend,
            device=device.type,
            model=settings.model,
            parameters=parameter_count(self.model),
        )
        self.track = t = track.start(
            total_steps=settings.steps,
            log_interval=settings.log_interval,
            metrics=run.metrics_enabled,
            settings=self._track_settings(),
            log=self.log,
            stats=self.stats,
            info=info,
            start_fields={
                "job_id": run.job_id,
                "world_size": env.world_size,
                "backend": self.dist.backend,
                "device": device.type,
                "model": settings.model,
                "params": info.parameters,
                "grad_bytes": self.grad_bytes,
                "restart": env.restart_count,
                "resume_step": self.resume_step,
            },
            manage_exit=False,
            require_endpoint=True,  # the configured port must serve, or Prometheus misses it
        )
        self.stats = t.stats  # another when run under `observe`: it took our counters over
        self.log.info(
            "distributed",
            gloo_socket_ifname=os.environ.get("GLOO_SOCKET_IFNAME", "-"),
            pg_timeout_seconds=settings.pg_timeout_seconds,
            grad_compression=settings.grad_compression,
            bucket_cap_mb=settings.bucket_cap_mb,
        )

        self.staged: StagedAllReduce | None = None
        compression = settings.grad_compression
        if staged:
            self.staged = StagedAllReduce(
                self.model,
                t.comm_counter(),
                bucket_bytes=int(settings.bucket_cap_mb * 1024 * 1024),
                compression=compression,
            )
            train_model = t.watch(self.model)
        else:
            device_ids = [device.index] if device.type == "cuda" else None
            train_model = DistributedDataParallel(
                self.model, device_ids=device_ids, bucket_cap_mb=settings.bucket_cap_mb
            )
            if run.metrics_enabled:
                t.watch(train_model, compression=compression)
            else:  # --no-metrics: nothing counts the all-reduce, the hook still compresses
                t.watch(self.model)
                chosen = compression_hook(compression, train_model.process_group)
                if chosen is not None:
                    train_model.register_comm_hook(chosen[1], chosen[0])
        self.train_step = TrainStep(
            train_model, self.optimizer, self.stream, device, t, self.staged
        )

    def _track_settings(self) -> TrackSettings:
        run, env = self.run, self.env
        return TrackSettings(
            job_id=run.job_id,
            node=run.node,
            rank=env.rank,
            local_rank=env.local_rank,
            world_size=env.world_size,
            restart_count=env.restart_count,
            metrics_address=run.metrics_address,
            metrics_port=run.metrics_base_port + env.local_rank if run.metrics_enabled else None,
            run_dir=run.run_dir,
            log_dir=run.job_log_dir,
            log_interval=run.trainer.log_interval,
            linger_seconds=run.trainer.linger_seconds,
            tls=run.tls,
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
        settings, stats, t = self.run.trainer, self.stats, self.track
        interval = settings.checkpoint_interval
        try:
            while stats.steps < settings.steps:
                loss = self.train_step()
                t.step(samples=settings.batch_size, loss=loss, epoch=self.stream.epoch)
                if interval and (stats.steps % interval == 0 or stats.steps == settings.steps):
                    with t.checkpoint():
                        self._checkpoint()
                if self.run.step_sleep_seconds:
                    with t.pause():  # --step-sleep is not training time
                        time.sleep(self.run.step_sleep_seconds)
            self.completed = True
            t.finish()
        except BaseException as exc:
            self._log_failure(exc)
            raise

    def _checkpoint(self) -> None:
        stats = self.stats
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
            self.store.prune(self.run.trainer.checkpoint_keep_last)
            self.store.prune_old_jobs(self.run.trainer.checkpoint_max_age_days)

    def summary(self) -> dict:
        return self.track.summary()

    # --- the end --------------------------------------------------------------------------

    def close(self) -> None:
        """Leave the group; after a finished job keep /metrics up for `linger` seconds."""
        try:
            if self.completed:
                shutdown()
        finally:
            try:
                if self.track is not None:
                    self.track.close(ok=self.completed)
            finally:
                self.log.close()

    def _log_failure(self, exc: BaseException) -> None:
        self.log.error(
            "failed",
            restart=self.env.restart_count,
            step=self.stats.steps if self.stats else 0,
            error=type(exc).__name__,
            reason=json.dumps(str(exc)[:500]),
        )
