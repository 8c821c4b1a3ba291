"""Counting the gradient all-reduce and the collectives in a one-process gloo group."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import fp16_compress_hook
from torch.nn.parallel import DistributedDataParallel

from minicluster import track
from minicluster.track import collectives, comm
from tests.track.conftest import settings


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(50, 20), torch.nn.ReLU(), torch.nn.Linear(20, 5))


GRAD_BYTES = 4 * (50 * 20 + 20 + 20 * 5 + 5)


def train(ddp: torch.nn.Module, steps: int, t=None) -> None:
    for _ in range(steps):
        loss = ddp(torch.randn(8, 50)).square().mean()
        if t is None:
            loss.backward()
        else:
            with t.phase("backward"):
                loss.backward()
            t.step(samples=8)


def test_watch_counts_steps_times_gradient_bytes(group):
    t = track.start(total_steps=3, settings=settings())
    ddp = t.watch(DistributedDataParallel(model()))
    train(ddp, 3, t)
    comm_stats = t.stats.comm
    assert (comm_stats.calls, comm_stats.bytes) == (3, 3 * GRAD_BYTES)
    assert comm_stats.seconds > 0 and t.stats.phase_seconds["comm"] > 0
    assert (t.grad_bytes, t.info.parameters) == (GRAD_BYTES, GRAD_BYTES // 4)
    assert t.info.model == "sequential"
    summary = t.summary()
    assert (summary["allreduce_calls"], summary["allreduce_bytes"]) == (3, 3 * GRAD_BYTES)
    assert "collectives" not in summary  # nothing observed outside DDP


@pytest.mark.parametrize("how", ["watch", "registered after watch", "builtin after watch"])
def test_a_compression_hook_is_composed_and_its_wire_bytes_counted(group, how):
    t = track.start(settings=settings())
    ddp = DistributedDataParallel(model())
    if how == "watch":
        t.watch(ddp, hook=fp16_compress_hook)
    elif how == "registered after watch":
        t.watch(ddp)
        ddp.register_comm_hook(None, fp16_compress_hook)
    else:
        t.watch(ddp)
        ddp.register_builtin_comm_hook(dist.BuiltinCommHookType.FP16_COMPRESS)
    train(ddp, 2)
    # fp16 on the wire: half the bucket, and not counted again as a plain all_reduce.
    assert (t.stats.comm.calls, t.stats.comm.bytes) == (2, GRAD_BYTES)
    assert collectives.STATS.calls == {}
    with pytest.raises(RuntimeError, match="can only be called once"):
        ddp.register_comm_hook(None, fp16_compress_hook)


def test_gradients_with_the_composed_hook_equal_plain_ddp(group):
    plain = DistributedDataParallel(model())
    plain.register_comm_hook(None, fp16_compress_hook)
    t = track.start(settings=settings())
    watched = t.watch(DistributedDataParallel(model()), hook=fp16_compress_hook)
    batch = torch.randn(8, 50)
    for ddp in (plain, watched):
        ddp(batch).square().mean().backward()
    for p, q in zip(plain.parameters(), watched.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad)


def test_a_hook_registered_before_watch_is_left_alone_with_a_warning(group):
    t = track.start(settings=settings())
    ddp = DistributedDataParallel(model())
    ddp.register_comm_hook(None, fp16_compress_hook)
    with pytest.warns(UserWarning, match="not counted"):
        t.watch(ddp)
    train(ddp, 1)
    assert t.stats.comm.calls == 0 and t.summary()["allreduce_bytes"] is None


def test_collectives_count_calls_bytes_and_latency(group):
    collectives.install()
    x = torch.ones(1000)
    for _ in range(3):
        dist.all_reduce(x)
    dist.broadcast(torch.ones(250, dtype=torch.float64), src=0)
    work = dist.all_reduce(torch.ones(10), async_op=True)
    work.wait()
    dist.all_gather([torch.empty(100, dtype=torch.int32)], torch.ones(100, dtype=torch.int32))
    dist.barrier()
    from torch.distributed import all_reduce  # a name bound after install is counted too

    all_reduce(torch.ones(5))
    snap = collectives.STATS.snapshot()
    assert {op: (v["calls"], v["bytes"]) for op, v in snap.items()} == {
        "all_reduce": (5, 12000 + 40 + 20),
        "broadcast": (1, 2000),
        "all_gather": (1, 400),
        "barrier": (1, 0),
    }
    assert all(v["seconds"] > 0 for v in snap.values())
    collectives.uninstall()
    dist.all_reduce(x)
    assert collectives.STATS.calls["all_reduce"] == 5
    assert dist.all_reduce is collectives._originals.get("all_reduce", dist.all_reduce)


def test_observed_ddp_is_counted_once_when_the_script_also_watches(group):
    collectives.install()
    t = track.start(settings=settings(), observer=True, manage_exit=False)
    comm.patch_ddp(t.watch)
    ddp = DistributedDataParallel(model())  # counted from construction on
    assert comm.attached(ddp) is not None
    again = track.start(total_steps=2)
    assert again is t
    again.watch(ddp)
    train(ddp, 2, again)
    assert (t.stats.comm.calls, t.stats.comm.bytes) == (2, 2 * GRAD_BYTES)
    assert collectives.STATS.calls == {}


def test_the_staged_path_under_observation_counts_as_gradient_all_reduce_only(group):
    from minicluster.trainer.staged import StagedAllReduce

    collectives.install()
    t = track.start(settings=settings())
    net = model()
    staged = StagedAllReduce(net, t.comm_counter())  # its start-up broadcasts are real traffic
    broadcasts = collectives.STATS.calls["broadcast"]
    assert broadcasts == len(list(net.parameters()))
    net(torch.randn(8, 50)).square().mean().backward()
    staged.sync()
    assert (t.stats.comm.calls, t.stats.comm.bytes) == (1, GRAD_BYTES)
    assert collectives.STATS.calls == {"broadcast": broadcasts}


def test_collectives_in_future_callbacks_on_another_thread_are_counted_within_the_block(group):
    """PowerSGD's later all-reduces run in callbacks of earlier futures, on the thread that
    completes them (gloo's own), where the caller's capture is absent."""
    collectives.install_capture()
    tensor = torch.ones(256)  # 1024 bytes
    then = torch._C.Future.then

    def launched_from(block: bool) -> list[int]:
        counted: list[int] = []
        future: torch.futures.Future = torch.futures.Future()
        callback = lambda done: dist.all_reduce(tensor) or done.value()  # noqa: E731
        if block:
            with collectives.capture_callbacks(counted.append):
                chained = future.then(callback)
        else:
            chained = future.then(callback)
        completer = threading.Thread(target=future.set_result, args=(7,))
        completer.start()
        completer.join()
        assert chained.wait() == 7
        return counted

    assert launched_from(block=True) == [1024]
    assert torch._C.Future.then is then  # the patch lasts the block only
    assert launched_from(block=False) == []  # outside it nothing is captured
    assert collectives.STATS.calls.get("all_reduce", 0) == 0  # and nothing counted loose
