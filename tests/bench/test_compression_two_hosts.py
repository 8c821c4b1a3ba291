"""Gradient compression across the two simulated hosts: the counted all-reduce bytes are
the compressed gradient sizes, and `none` counts what it always did."""

from __future__ import annotations

import pytest

from minicluster.core.config import TrainerSettings
from minicluster.track.compression import START_POWERSGD_ITER, powersgd_bytes
from minicluster.trainer.models import build_model, gradient_bytes
from tests.bench.netns import lan_pair
from tests.bench.trainer_pair import train_pair
from tests.hosts.fixtures import check_prerequisites

pytestmark = pytest.mark.e2e
STEPS = 14


def test_each_compression_counts_the_bytes_it_sends(tmp_path):
    check_prerequisites()
    model = build_model(TrainerSettings(model="mlp"))
    full = gradient_bytes(model)
    expected = {
        "none": STEPS * full,
        "fp16": STEPS * full // 2,
        "bf16": STEPS * full // 2,
        "powersgd": START_POWERSGD_ITER * full
        + (STEPS - START_POWERSGD_ITER) * powersgd_bytes([p.shape for p in model.parameters()]),
    }
    losses = {}
    with lan_pair() as lan:
        for name, total in expected.items():
            ranks = train_pair(lan, tmp_path, STEPS, "--grad-compression", name)
            assert sorted(ranks) == [0, 1], name
            for summary in ranks.values():
                assert summary["world_size"] == 2 and summary["steps"] == STEPS
                assert summary["grad_bytes"] == full
                assert summary["allreduce_bytes"] == total, name
            losses[name] = ranks[0]["final_loss"]
    assert expected["fp16"] * 2 == expected["none"]
    # Same seed and data: 16-bit gradients barely move the loss after a few steps.
    assert losses["fp16"] == pytest.approx(losses["none"], rel=0.05)
