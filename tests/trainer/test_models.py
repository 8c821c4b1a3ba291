"""Model sizes, gradient bytes and causality."""

from __future__ import annotations

import pytest
import torch

from minicluster.core.config import ConfigError, TrainerSettings
from minicluster.trainer.models import build_model, gradient_bytes, parameter_count
from tests.trainer.conftest import mlp_parameters, transformer_parameters

SMALL = dict(hidden_size=16, layers=2, heads=4, vocab_size=12, seq_len=8)


def test_parameter_counts_match_the_architecture():
    mlp = build_model(TrainerSettings(model="mlp", **SMALL))
    transformer = build_model(TrainerSettings(model="transformer", **SMALL))
    assert parameter_count(mlp) == mlp_parameters(12, 16, 2)
    assert parameter_count(transformer) == transformer_parameters(12, 16, 2, 8)


def test_gradient_bytes_are_numel_times_element_size_of_trainable_parameters():
    model = build_model(TrainerSettings(model="transformer", **SMALL))
    assert gradient_bytes(model) == 4 * parameter_count(model)
    model.tokens.weight.requires_grad_(False)  # frozen parameters are not all-reduced
    assert gradient_bytes(model) == 4 * (parameter_count(model) - 12 * 16)
    assert gradient_bytes(model.to(torch.float64)) == 8 * (parameter_count(model) - 12 * 16)


@pytest.mark.parametrize("name", ["mlp", "transformer"])
def test_predictions_never_look_ahead(name):
    torch.manual_seed(0)
    model = build_model(TrainerSettings(model=name, **SMALL)).eval()
    tokens = torch.randint(0, 12, (3, 8))
    changed = tokens.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 12
    with torch.no_grad():
        before, after = model(tokens), model(changed)
    assert before.shape == (3, 8, 12)
    torch.testing.assert_close(before[:, :5], after[:, :5])
    assert not torch.allclose(before[:, 5:], after[:, 5:])


def test_heads_must_divide_the_hidden_size():
    with pytest.raises(ConfigError, match=r"trainer\.heads: 3 does not divide hidden_size 16"):
        build_model(TrainerSettings(model="transformer", **{**SMALL, "heads": 3}))
