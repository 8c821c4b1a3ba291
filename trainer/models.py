"""The two workloads: a windowed MLP and a small decoder-only transformer, both language
models over `vocab_size` tokens (see data.py), sized by the config's trainer section."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minicluster.core.config import ConfigError, TrainerSettings


class MLPLanguageModel(nn.Module):
    """Predicts the next token from the current and the previous one.

    Two tokens are exactly what the synthetic sequences need (next = 2*t - t_prev mod V),
    so the MLP can learn them fully, while staying the cheapest model to run.
    """

    def __init__(self, vocab_size: int, hidden_size: int, layers: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, hidden_size)
        body: list[nn.Module] = [nn.Linear(2 * hidden_size, hidden_size), nn.GELU()]
        for _ in range(layers - 1):
            body += [nn.Linear(hidden_size, hidden_size), nn.GELU()]
        self.body = nn.Sequential(*body)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        current = self.embed(tokens)  # [batch, time, hidden]
        previous = F.pad(current, (0, 0, 1, 0))[:, :-1]  # shifted one step right
        return self.head(self.body(torch.cat([previous, current], dim=-1)))


class CausalSelfAttention(nn.Module):
    def __init__(self, hidden_size: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, hidden = x.shape
        q, k, v = self.qkv(x).split(hidden, dim=2)
        q, k, v = (t.view(batch, time, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(batch, time, hidden))


class Block(nn.Module):
    """Pre-norm transformer block (attention, then a 4x MLP), as in GPT-2."""

    def __init__(self, hidden_size: int, heads: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden_size)
        self.attn = CausalSelfAttention(hidden_size, heads)
        self.ln2 = nn.LayerNorm(hidden_size)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, 4 * hidden_size),
            nn.GELU(),
            nn.Linear(4 * hidden_size, hidden_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TransformerLanguageModel(nn.Module):
    def __init__(self, vocab_size: int, hidden_size: int, layers: int, heads: int, seq_len: int):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, hidden_size)
        self.positions = nn.Embedding(seq_len, hidden_size)
        self.blocks = nn.Sequential(*(Block(hidden_size, heads) for _ in range(layers)))
        self.ln_f = nn.LayerNorm(hidden_size)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tokens(tokens) + self.positions(positions)
        return self.head(self.ln_f(self.blocks(x)))


def build_model(settings: TrainerSettings) -> nn.Module:
    """The configured model; parameters depend only on the seed set before this call."""
    if settings.model == "mlp":
        return MLPLanguageModel(settings.vocab_size, settings.hidden_size, settings.layers)
    if settings.hidden_size % settings.heads:
        raise ConfigError(
            "settings",
            "trainer.heads",
            f"{settings.heads} does not divide hidden_size {settings.hidden_size}",
        )
    return TransformerLanguageModel(
        settings.vocab_size,
        settings.hidden_size,
        settings.layers,
        settings.heads,
        settings.seq_len,
    )


def language_model_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def gradient_bytes(model: nn.Module) -> int:
    """Bytes all-reduced per step: numel x element size over trainable parameters."""
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
