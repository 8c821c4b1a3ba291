"""Metric definitions every consumer shares: the trainer and `minicluster.track` publish
them; recording rules, dashboards, the run summary, the report and `status` read them.

A definition lives here once; a consumer that needs a metric name, a phase list, a window,
a selector or a derived ratio imports it instead of writing it again. Each derived ratio
has a Python form (for the summary, from the ranks' totals) and a PromQL form (for the
recording rules), both built from the same constants, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

# --- jobs and selectors ------------------------------------------------------------------

# The Prometheus job names (the scrape config's job label).
TRAINER_JOB = "trainer"
NODE_JOB = "node"
TRAINER = f'job="{TRAINER_JOB}"'
NODE = f'job="{NODE_JOB}"'
# Loopback never carries cluster traffic; its only names are Linux `lo` and macOS `lo0`.
LOOPBACK_DEVICES = ("lo", "lo0")
NOT_LOOPBACK = f'device!~"{"|".join(LOOPBACK_DEVICES)}"'

# --- what a training rank publishes ------------------------------------------------------

TRAINER_INFO = "trainer"  # an info metric: trainer_info{job_id, world_size, backend, ...}
MODEL_PARAMETERS = "trainer_model_parameters"
STEPS = "trainer_steps_total"
SAMPLES = "trainer_samples_total"
EPOCH = "trainer_epoch"
TARGET_STEPS = "trainer_target_steps"
PROGRESS = "trainer_progress_ratio"
LAST_STEP_TIMESTAMP = "trainer_last_step_timestamp_seconds"
PHASE_SECONDS = "trainer_phase_seconds_total"
STEP_DURATION = "trainer_step_duration_seconds"  # a histogram
ALLREDUCE_CALLS = "trainer_allreduce_calls_total"
ALLREDUCE_BYTES = "trainer_allreduce_bytes_total"
ALLREDUCE_SECONDS = "trainer_allreduce_seconds_total"
ALLREDUCE_BUCKET = "trainer_allreduce_bucket_seconds"  # a histogram
LOSS = "trainer_loss"
CHECKPOINT_DURATION = "trainer_checkpoint_duration_seconds"
LAST_CHECKPOINT_STEP = "trainer_last_checkpoint_step"
LAST_CHECKPOINT_TIMESTAMP = "trainer_last_checkpoint_timestamp_seconds"
RESTARTS = "trainer_restarts_total"
JOB_FINISHED = "trainer_job_finished"

# Where a step's time goes; the phases partition the step. `staging` is the MPS path's
# copy of gradients to the CPU and back around the gloo all-reduce: it is communication
# cost, not compute.
PHASES = ("data", "forward", "backward", "comm", "optimizer", "staging")
COMM_PHASES = ("comm", "staging")
COMPUTE_PHASES = tuple(phase for phase in PHASES if phase not in COMM_PHASES)

# --- rate windows ------------------------------------------------------------------------

# rate() needs two points, and one missed scrape must not leave a gap: four scrapes at
# least. Prometheus 3.x made range selectors left-open, which this margin also absorbs.
MIN_SCRAPES_PER_WINDOW = 4
MIN_RATE_WINDOW_SECONDS = 60


def rate_window_seconds(
    scrape_interval_seconds: float, floor_seconds: float = MIN_RATE_WINDOW_SECONDS
) -> int:
    """The range of a rate(): four scrapes at least, and never under `floor_seconds`."""
    return int(max(floor_seconds, MIN_SCRAPES_PER_WINDOW * scrape_interval_seconds))


def rate_window(
    scrape_interval_seconds: float, floor_seconds: float = MIN_RATE_WINDOW_SECONDS
) -> str:
    """`rate_window_seconds` as a PromQL duration: whole minutes as 'Nm', else 'Ns'."""
    seconds = rate_window_seconds(scrape_interval_seconds, floor_seconds)
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


# --- derived ratios: Python form and PromQL form ----------------------------------------

# A counter sampled over a window: `series selector text -> PromQL`, e.g. a rate over the
# rules' window, or the counter's last value for a whole job (counters start at 0).
Sampler = Callable[[str], str]


def rate_over(window: str) -> Sampler:
    return lambda series: f"rate({series}[{window}])"


def _regex(values: tuple[str, ...]) -> str:
    return "|".join(values)


def comm_fraction(phase_seconds: Mapping[str, float]) -> float | None:
    """The share of the step spent communicating: COMM_PHASES seconds over all PHASES
    seconds. None before any time was counted."""
    total = sum(float(phase_seconds.get(phase) or 0.0) for phase in PHASES)
    if total <= 0:
        return None
    return sum(float(phase_seconds.get(phase) or 0.0) for phase in COMM_PHASES) / total


def comm_fraction_promql(sample: Sampler, selector: str = TRAINER) -> str:
    """`comm_fraction` per rank: the same phases summed the same way, over `sample`."""
    comm = f'{PHASE_SECONDS}{{{selector}, phase=~"{_regex(COMM_PHASES)}"}}'
    every = f'{PHASE_SECONDS}{{{selector}, phase=~"{_regex(PHASES)}"}}'
    return f"sum without (phase) ({sample(comm)})\n  /\nsum without (phase) ({sample(every)})"


# A job's communication fraction is that of its least-communicating rank: in synchronous
# DDP the other ranks also wait in the all-reduce for the slowest one, which is a
# straggler's cost, not the network's.
def job_comm_fraction(per_rank: Mapping[int, float | None]) -> float | None:
    known = [value for value in per_rank.values() if value is not None]
    return min(known) if known else None


JOB_COMM_FRACTION_AGGREGATION = "min by (job_id)"


def compute_seconds_per_step_promql(sample: Sampler, selector: str = TRAINER) -> str:
    """Seconds per step a rank spends on its own work: the phases that are not COMM_PHASES."""
    compute = f'{PHASE_SECONDS}{{{selector}, phase=~"{_regex(COMPUTE_PHASES)}"}}'
    return f"sum without (phase) ({sample(compute)})\n  /\n{sample(f'{STEPS}{{{selector}}}')}"


def busbw_factor(ranks: int) -> float:
    """nccl-tests' bus bandwidth of a ring all-reduce: algbw x 2(n-1)/n, n the ranks, so it
    compares directly with the link speed. 0 for a single rank, which sends nothing."""
    return 2 * (ranks - 1) / ranks if ranks > 0 else 0.0


def busbw_factor_promql(ranks: str) -> str:
    """`busbw_factor` of a PromQL expression that counts the ranks."""
    return f"2 * ({ranks} - 1)\n  / {ranks}"


# --- recording rules other components query by name -------------------------------------

CPU_UTILISATION = "node:cpu_utilisation:ratio"
MEMORY_AVAILABLE = "node:memory_available:ratio"
RANK_COMM_FRACTION = "job_rank:trainer_comm_fraction:ratio"
JOB_COMM_FRACTION = "job:trainer_comm_fraction:min"
PHASE_SECONDS_PER_STEP = "job_rank:trainer_phase_seconds_per_step:ratio"


def cpu_utilisation_promql(window: str, selector: str = NODE) -> str:
    """Busy = not idle, averaged over all cores. macOS has user/nice/system/idle only, Linux
    also iowait/irq/steal; "not idle" means the same on both."""
    idle = f'node_cpu_seconds_total{{{selector}, mode="idle"}}'
    return f"1 - avg without (cpu, mode) (rate({idle}[{window}]))"


# --- minicluster.track: collectives and the observed program's lifecycle ---------------
# Every torch.distributed collective outside DDP's gradient all-reduce (which keeps the
# trainer_allreduce_* names), labelled op="<torch.distributed function name>". Bytes are
# this rank's input payload; a barrier counts calls only.
COLLECTIVE_OPS = (
    "all_reduce",
    "broadcast",
    "all_gather",
    "all_gather_into_tensor",
    "reduce_scatter",
    "reduce_scatter_tensor",
    "barrier",
)
COLLECTIVE_CALLS = "trainer_collective_calls_total"
COLLECTIVE_BYTES = "trainer_collective_bytes_total"
COLLECTIVE_SECONDS = "trainer_collective_seconds_total"
# When the rank's program started, and how it ended (absent while it runs).
START_TIMESTAMP = "trainer_start_timestamp_seconds"
EXIT_CODE = "trainer_exit_code"
