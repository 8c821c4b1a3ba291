"""Run a program that uses no minicluster API and observe it anyway, per rank.

    python -m minicluster.track.observe SCRIPT.py ARGS...
    python -m minicluster.track.observe -m PACKAGE.MODULE ARGS...

(under torchrun: `torchrun ... -m minicluster.track.observe train.py --epochs 3`). The
program runs in this process through runpy, as `python SCRIPT.py` / `python -m` would run
it: `__main__`, its own sys.argv, sys.path[0] its directory (a script) or the current
one (`-m`), its exit status. Around it, per rank: `start` and `end exit_status=N` lines,
a `failed` line and the traceback as ERROR lines (with node and rank) when it raises,
process CPU and memory, and what `minicluster.track` publishes (the tracker's settings
come from the same environment; see minicluster.track). If the program also calls
`track.start()`, it gets this tracker: nothing is counted twice.

Patches, each small and reversible, applied before the program is imported:
- `collectives`: torch.distributed's all_reduce, broadcast, all_gather,
  all_gather_into_tensor, reduce_scatter, reduce_scatter_tensor and barrier (both the
  `torch.distributed` and `distributed_c10d` names) are wrapped to count calls, input
  bytes and latency (trainer_collective_*{op}); see minicluster.track.collectives.
- `ddp`: DistributedDataParallel.__init__ then registers the counting comm hook, so
  DDP's gradient all-reduce, which its C++ reducer does without torch.distributed's
  Python functions, is counted in trainer_allreduce_*; a hook the program registers
  later runs inside the counting one (minicluster.track.comm).
MINICLUSTER_OBSERVE=0 applies none; MINICLUSTER_OBSERVE_SKIP=ddp,collectives (or single
op names, e.g. barrier) leaves those out.
"""

from __future__ import annotations

import os
import runpy
import sys
import time
import traceback
from pathlib import Path

from minicluster.core.metrics import COLLECTIVE_OPS
from minicluster.track import collectives, comm, start
from minicluster.track.tracker import Tracker

USAGE = "usage: python -m minicluster.track.observe (SCRIPT.py | -m MODULE) [ARGS...]"
EXIT_USAGE = 2
ENV_OBSERVE = "MINICLUSTER_OBSERVE"
ENV_SKIP = "MINICLUSTER_OBSERVE_SKIP"


def apply_patches(tracker: Tracker, env=os.environ) -> list[str]:
    """The patches the environment asks for; returns their names."""
    if env.get(ENV_OBSERVE, "1").strip().lower() in ("0", "off", "false", "no"):
        return []
    skip = {name.strip() for name in env.get(ENV_SKIP, "").split(",") if name.strip()}
    applied = []
    ops = [op for op in COLLECTIVE_OPS if op not in skip]
    if "collectives" not in skip and ops:
        collectives.install(ops)
        applied.append("collectives")
    if "ddp" not in skip:
        comm.patch_ddp(tracker.watch)
        applied.append("ddp")
    return applied


def _target(argv: list[str]) -> tuple[str, str, list[str]] | str:
    """("module"|"script", name, program argv) or an error line."""
    if not argv or argv[0] in ("-h", "--help"):
        return USAGE
    if argv[0] == "-m":
        if len(argv) < 2:
            return "observe: -m needs a module name"
        return "module", argv[1], argv[2:]
    path = argv[0]
    if not Path(path).is_file():
        return f"observe: {path}: no such file"
    return "script", path, argv[1:]


def _exit_status(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # what the interpreter does with sys.exit("message")
    return 1


def _log_traceback(tracker: Tracker, exc: BaseException) -> None:
    tracker.fail(exc)  # a no-op if the program's own `close()` saw the error first
    frames = traceback.extract_tb(exc.__traceback__)
    # Leave out this module's and runpy's frames: the program's own come first.
    own = [
        f for f in frames if f.filename != __file__ and not f.filename.startswith("<frozen runpy")
    ]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(own)]
    lines += traceback.format_exception_only(type(exc), exc)
    for chunk in lines:
        for line in chunk.rstrip("\n").splitlines():
            tracker._log.write("ERROR", "traceback " + line)


def run(kind: str, name: str, args: list[str]) -> int:
    if kind == "script":
        path = str(Path(name).resolve())
        sys.argv = [name, *args]
        sys.path[0] = str(Path(path).parent)
    else:
        sys.argv = [name, *args]  # runpy replaces argv[0] with the module's file
        sys.path[0] = os.getcwd()
    tracker = start(observer=True, manage_exit=False)
    tracker.log("program", kind=kind, name=name, patches=",".join(apply_patches(tracker)) or "-")
    began = time.perf_counter()
    status = 0
    try:
        if kind == "script":
            runpy.run_path(path, run_name="__main__")
        else:
            runpy.run_module(name, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        status = _exit_status(exc)
    except KeyboardInterrupt:
        status = 130
        tracker._log.error("interrupted")
    except BaseException as exc:  # the program's own error: reported, then exit 1
        status = 1
        _log_traceback(tracker, exc)
    finally:
        sys.stdout.flush()
    tracker.end(status, time.perf_counter() - began)
    return status


def main(argv: list[str] | None = None) -> int:
    target = _target(sys.argv[1:] if argv is None else argv)
    if isinstance(target, str):
        print(target, file=sys.stderr)
        return EXIT_USAGE
    kind, name, args = target
    if kind == "module":
        import importlib.util

        sys.path[0] = os.getcwd()
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError) as exc:
            found, reason = None, str(exc)
        else:
            reason = "no such module"
        if found is None:
            print(f"observe: -m {name}: {reason}", file=sys.stderr)
            return EXIT_USAGE
    return run(kind, name, args)


def _exit(status: int) -> None:
    """Exit with the program's status. After a failure, skip the interpreter's teardown: a
    process group the program left open can block it while a peer waits in a collective,
    and the rank would never exit for torchrun to notice."""
    if status == 0:
        sys.exit(0)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    _exit(main())
