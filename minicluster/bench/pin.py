"""Pin this rank to one core, then run a module: `python -m minicluster.bench.pin
[--cpu-offset N] MODULE ARGS...` (used as torchrun's program).

A rank gets core (offset + LOCAL_RANK) mod the cores this process may use, so two ranks
on one machine never share a core and world size 1 against 2 compares like with like.
The offset separates the ranks of two torchrun agents on the same machine (the local
profile's two nodes). Linux has os.sched_setaffinity; macOS has no API to pin a thread to
a core (thread_policy_set's affinity tags are hints that Apple Silicon ignores), so there
the rank runs unpinned and says so once.
"""

from __future__ import annotations

import os
import runpy
import sys

PINNED = "pinned cpu="
UNPINNED = "pinned none"


def pin(local_rank: int, offset: int = 0) -> int | None:
    """The core this process now runs on, or None where pinning is not possible."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[(offset + local_rank) % len(allowed)]
    os.sched_setaffinity(0, {cpu})
    return cpu


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    offset = 0
    if args[:1] == ["--cpu-offset"]:
        offset, args = int(args[1]), args[2:]
    if not args:
        usage = "usage: python -m minicluster.bench.pin [--cpu-offset N] MODULE ARGS"
        print(usage, file=sys.stderr)
        return 2
    cpu = pin(int(os.environ.get("LOCAL_RANK", "0")), offset)
    rank = os.environ.get("RANK", "0")
    print(f"rank {rank} " + (f"{PINNED}{cpu}" if cpu is not None else UNPINNED), flush=True)
    module, sys.argv = args[0], args
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
