"""Metric definitions every consumer shares: the trainer and `minicluster.track` publish
them; recording rules, dashboards, the run summary, the report and `status` read them.

A definition lives here once; a consumer that needs a phase list, a window or a derived
ratio imports it instead of writing it again.
"""

from __future__ import annotations

# The Prometheus job name of every training rank (the scrape config's job label).
TRAINER_JOB = "trainer"

# Where a step's time goes. `staging` is the MPS path's copy of gradients to the CPU and
# back around the gloo all-reduce: it is communication cost, not compute.
PHASES = ("data", "forward", "backward", "comm", "optimizer", "staging")
COMM_PHASES = ("comm", "staging")
