"""Observe your own training (or any distributed) script like minicluster's built-in trainer.

    from minicluster import track

    with track.start(total_steps=1000) as t:        # or t = track.start(...); ...; t.close()
        model = t.watch(DistributedDataParallel(net))  # counts the gradient all-reduce
        for batch in loader:
            with t.phase("data"):
                x, y = batch[0].to(device), batch[1].to(device)
            with t.phase("forward"):
                loss = loss_fn(model(x), y)
            with t.phase("backward"):
                loss.backward()
            with t.phase("optimizer"):
                opt.step(); opt.zero_grad()
            t.step(samples=len(x), loss=loss)        # the loss stays on its device

For work that is not a training loop: `t = track.start(total_tasks=N)` and `t.done(n=1)`,
which publish the same steps, target, progress and rate, so the progress bar, the
dashboards and the alerts work unchanged.

API (a `Tracker`, one per process; a second `start()` returns the same one):
- `step(samples=None, loss=None, epoch=None, n=1)`: steps ended now. Step time runs
  from the previous `step()` (the first: from `start()` or `watch()`), minus `pause()`d
  time; every `log_interval` steps (and at the last) a `step step=N target=T ...` line.
- `done(n=1)`: tasks finished. `loss(value)`: a loss read only at the next log step.
- `phase(name)`: a context manager; names from minicluster.core.metrics.PHASES (data,
  forward, backward, comm, optimizer, staging). Under a watched DDP model, the end of
  backward after the last bucket's all-reduce launch counts as comm.
- `watch(model, hook=None, state=None)`: counts a DistributedDataParallel model's gradient
  all-reduce (trainer_allreduce_*); `hook` (e.g. fp16_compress_hook) runs inside the
  counting one and the bytes are the ones it sends. A hook registered on the model after
  `watch()` is wrapped the same way; one registered before is left alone (a warning).
- `pause()`, `checkpoint()`: context managers (time not counted; a checkpoint's
  duration and step). `log(word, **fields)`: your own line in the merged log.
- `close()`: the `summary` line, then /metrics stays up `linger` seconds for the final
  scrape, then the discovery file goes. A `with` block, or interpreter exit, closes too;
  an exception logs a `failed` line and skips summary and linger.

Settings (the first that is set wins):
- job id: MINICLUSTER_JOB_ID, TORCHELASTIC_RUN_ID, a fresh `job-<time>-<hex>`.
- node: MINICLUSTER_NODE, the short host name.
- config: MINICLUSTER_CONFIG, else /opt/minicluster/config.yaml if it exists, else none.
  With a config that has this node: its metrics base port and address, its run dir
  (discovery files for the exporter's /sd), trainer.log_dir/<job_id> for rank logs,
  trainer.log_interval and trainer.linger_seconds. Without: 127.0.0.1:9400+LOCAL_RANK,
  no discovery, stdout only, log interval 10, no linger.
- metrics port: MINICLUSTER_METRICS_PORT (a base: + LOCAL_RANK; 0: any free port;
  `off`: no endpoint), then the config, then 9400. Address: MINICLUSTER_METRICS_ADDRESS.
- MINICLUSTER_RUN_DIR, MINICLUSTER_LOG_DIR, MINICLUSTER_LOG_INTERVAL, MINICLUSTER_LINGER
  override the config's; `start(log_interval=, linger=)` override everything.
- rank, local rank, world size, restarts: torchrun's RANK, LOCAL_RANK, WORLD_SIZE,
  TORCHELASTIC_RESTART_COUNT (0, 0, 1, 0 without torchrun).
Nothing here stops the program: a taken port or an unwritable run dir is one WARNING
line, and the tracker keeps counting without an endpoint or discovery. The exception is
a node whose config says `security.tls: true`: the endpoint then serves HTTPS and
answers only client certificates the cluster CA signed, and a missing or unreadable
<install_dir>/tls/ file ends the rank at start with one ERROR line naming it (exit 2)
rather than serving the LAN plain HTTP.

A program that does not use this API can still be observed: `python -m
minicluster.track.observe SCRIPT.py ARGS` (see minicluster.track.observe).
"""

from __future__ import annotations

from minicluster.track.settings import TrackSettings, resolve
from minicluster.track.tracker import Tracker, current, set_current

__all__ = ["TrackSettings", "Tracker", "current", "start"]


def start(
    total_steps: int | None = None,
    total_tasks: int | None = None,
    *,
    log_interval: int | None = None,
    linger: float | None = None,
    model: str | None = None,
    metrics: bool = True,
    settings: TrackSettings | None = None,
    **internal,
) -> Tracker:
    """Start tracking this rank (or return the process's tracker, updated)."""
    if total_steps is not None and total_tasks is not None:
        raise ValueError("start(): give total_steps or total_tasks, not both")
    total = total_steps if total_steps is not None else total_tasks
    if total is not None and total < 0:
        raise ValueError(f"start(): the total must be >= 0, got {total}")
    unit = "tasks" if total_tasks is not None else "steps"
    existing = current()
    if existing is not None:
        existing.adopt(total, unit, log_interval, model)
        if internal.get("stats") is not None:
            existing.take_over(internal["stats"], internal.get("info"))
        return existing
    manage_exit = internal.pop("manage_exit", True)
    tracker = Tracker(settings or resolve(), total=total, unit=unit, metrics=metrics, **internal)
    if log_interval:
        tracker.log_interval = log_interval
    if linger is not None:
        tracker.linger_seconds = linger
    if model:
        tracker.info.model = model
    set_current(tracker, manage_exit)
    return tracker
