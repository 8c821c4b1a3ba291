"""Gradient compression: the counted all-reduce bytes are the bytes the hooks send.

A one-process gloo group runs the hooks' real collectives; two ranks are in
tests/bench/test_compression_jobs.py.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.parallel import DistributedDataParallel

from minicluster import track
from minicluster.core.config import ConfigError, parse_config
from minicluster.core.profiles import local_profile
from minicluster.track import comm, compression
from minicluster.track.stats import CommStats
from minicluster.trainer.models import build_model, gradient_bytes, language_model_loss
from minicluster.trainer.staged import StagedAllReduce
from tests import one_rank
from tests.one_rank import SETTINGS, batch

group = one_rank.group  # the fixture, for the tests here

START = compression.START_POWERSGD_ITER


def per_step_bytes(stats: CommStats, model, run, steps: int) -> list[int]:
    inputs, targets = batch()
    sent = []
    for _ in range(steps):
        before = stats.bytes
        model.zero_grad()
        language_model_loss(run(inputs), targets).backward()
        sent.append(stats.bytes - before)
    return sent


def ddp_with(name: str):
    torch.manual_seed(0)
    model = build_model(SETTINGS)
    ddp = DistributedDataParallel(model)
    stats = CommStats()
    chosen = compression.hook_for(name, None, stats)
    comm.attach(ddp, stats, *(chosen or (None, None)))
    return model, ddp, stats


def test_none_counts_the_gradient_bytes_as_before(group):
    model, ddp, stats = ddp_with("none")
    assert per_step_bytes(stats, model, ddp, 2) == [gradient_bytes(model)] * 2


@pytest.mark.parametrize("name", ["fp16", "bf16"])
def test_fp16_and_bf16_send_exactly_half(group, name):
    model, ddp, stats = ddp_with(name)
    assert gradient_bytes(model) % 2 == 0
    assert per_step_bytes(stats, model, ddp, 2) == [gradient_bytes(model) // 2] * 2


def test_powersgd_sends_the_factors_after_its_warm_up_steps(group):
    model, ddp, stats = ddp_with("powersgd")
    sent = per_step_bytes(stats, model, ddp, START + 2)
    shapes = [p.shape for p in model.parameters()]
    compressed = compression.powersgd_bytes(shapes)
    assert sent[:START] == [gradient_bytes(model)] * START
    assert sent[START:] == [compressed] * 2
    assert compressed < gradient_bytes(model) / 2


@pytest.mark.parametrize("name", ["none", "fp16", "bf16", "powersgd"])
def test_staged_path_runs_the_same_choices_and_counts_the_same_bytes(group, name):
    torch.manual_seed(0)
    model = build_model(SETTINGS)
    stats = CommStats()
    staged = StagedAllReduce(model, stats, compression=name)
    assert len(staged.buckets) == 1

    def run(inputs):
        return model(inputs)

    inputs, targets = batch()
    sent = []
    for _ in range(START + 1 if name == "powersgd" else 2):
        before = stats.bytes
        model.zero_grad()
        language_model_loss(run(inputs), targets).backward()
        staged.sync()
        sent.append(stats.bytes - before)
    full = gradient_bytes(model)
    expected = {
        "none": [full] * 2,
        "fp16": [full // 2] * 2,
        "bf16": [full // 2] * 2,
        "powersgd": [full] * START
        + [compression.powersgd_bytes([p.shape for b in staged.buckets for p in b])],
    }[name]
    assert sent == expected
    # One rank: the reduced gradients are the rank's own (rounded to 16 bits under fp16).
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_watch_takes_a_compression_by_name(group):
    torch.manual_seed(0)
    model = build_model(SETTINGS)
    ddp = DistributedDataParallel(model)
    t = track.start(total_steps=2, metrics=False, manage_exit=False)
    try:
        t.watch(ddp, compression="fp16")
        assert per_step_bytes(t.stats.comm, model, ddp, 1) == [gradient_bytes(model) // 2]
        with pytest.raises(ValueError, match="powersgd"):
            t.watch(DistributedDataParallel(build_model(SETTINGS)), compression="int8")
    finally:
        t.close()


def test_config_names_a_bad_choice_and_takes_the_bucket_size():
    data = local_profile().model_dump(mode="json")
    data["trainer"].update(grad_compression="fp16", bucket_cap_mb=4)
    trainer = parse_config(data, "config.yaml").trainer
    assert (trainer.grad_compression, trainer.bucket_cap_mb) == ("fp16", 4.0)
    data["trainer"]["grad_compression"] = "int8"
    with pytest.raises(ConfigError, match=r"trainer\.grad_compression"):
        parse_config(data, "config.yaml")
