"""The counting hook and the staged path count exactly the gradient bytes, bucket by bucket.

A one-process gloo group is enough for the counting; two ranks are in test_jobs.py.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.parallel import DistributedDataParallel

from minicluster.track.comm import CountingHookState, counting_allreduce_hook
from minicluster.track.stats import CommStats
from minicluster.trainer.checkpoint import CheckpointStore, agree_on_resume_step, gather_counters
from minicluster.trainer.models import build_model, gradient_bytes, language_model_loss
from minicluster.trainer.staged import StagedAllReduce
from tests import one_rank
from tests.one_rank import SETTINGS, batch

group = one_rank.group  # the fixture, for the tests here


def reference_grads() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model(SETTINGS)
    inputs, targets = batch()
    language_model_loss(model(inputs), targets).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("bucket_cap_mb", [25, 0.01])  # one bucket, then many
def test_hook_counts_each_bucket_and_exactly_the_gradient_bytes(group, bucket_cap_mb):
    torch.manual_seed(0)
    model = build_model(SETTINGS)
    ddp = DistributedDataParallel(model, bucket_cap_mb=bucket_cap_mb)
    latencies = []
    stats = CommStats(on_latency=latencies.append)
    ddp.register_comm_hook(CountingHookState(None, stats), counting_allreduce_hook)
    inputs, targets = batch()
    for step in (1, 2):
        language_model_loss(ddp(inputs), targets).backward()
        assert stats.bytes == step * gradient_bytes(model)
    assert stats.calls == len(latencies) == 2 * (stats.calls // 2)
    assert (stats.calls > 2) == (bucket_cap_mb < 1)
    assert stats.seconds == pytest.approx(sum(latencies)) and stats.seconds > 0


def test_hook_leaves_the_gradients_as_ddp_computes_them(group):
    torch.manual_seed(0)
    model = build_model(SETTINGS)
    ddp = DistributedDataParallel(model)
    ddp.register_comm_hook(CountingHookState(None, CommStats()), counting_allreduce_hook)
    inputs, targets = batch()
    language_model_loss(ddp(inputs), targets).backward()
    for name, grad in reference_grads().items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad)


def test_staged_path_buckets_stages_and_counts_exactly_the_gradient_bytes(group):
    torch.manual_seed(0)
    model = build_model(SETTINGS)
    stats = CommStats()
    staged = StagedAllReduce(model, stats, bucket_bytes=16 * 1024)
    assert len(staged.buckets) > 1
    assert sorted(id(p) for b in staged.buckets for p in b) == sorted(
        id(p) for p in model.parameters()
    )
    inputs, targets = batch()
    language_model_loss(model(inputs), targets).backward()
    times = staged.sync()
    assert (stats.calls, stats.bytes) == (len(staged.buckets), gradient_bytes(model))
    assert times.staging > 0 and times.comm > 0
    for name, grad in reference_grads().items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad)


def test_resume_agreement_and_counter_gathering_in_a_group(group, tmp_path):
    store = CheckpointStore(tmp_path)
    cpu = torch.device("cpu")
    assert agree_on_resume_step(store, cpu) == 0
    store.save(10, {"x": 1})
    store.save(20, {"x": 2})
    assert agree_on_resume_step(store, cpu) == 20
    assert gather_counters({"steps": 20, "allreduce_bytes": 2**40 + 1}, cpu) == [
        {"steps": 20.0, "allreduce_bytes": float(2**40 + 1)}
    ]
