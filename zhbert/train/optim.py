"""The optimizer and learning-rate schedule pretraining and fine-tuning share: AdamW with no weight decay on
vectors; linear warmup, then linear or cosine decay."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Literal

import torch
from torch import nn


def adamw(params: Iterable[nn.Parameter], lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999),
          eps: float = 1e-8, fused: bool = False) -> torch.optim.AdamW:
    """AdamW over the trainable ``params``; biases, LayerNorms and other vectors (ndim < 2) are not decayed.
    ``fused``: one kernel per parameter group instead of a dozen elementwise passes per tensor; fine-tuning sets
    it (a tiny char model's step on a CPU core: 47 instead of 57 ms, docs/benchmarks.md "Fine-tuning steps").
    Pretraining does not: under ZeRO, DeepSpeed steps one flat tensor a group already, and fused is unmeasured
    there."""
    params = [p for p in params if p.requires_grad]
    return torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                             lr=lr, betas=betas, eps=eps, fused=fused or None)


def warmup_decay(warmup: int, total: int, schedule: Literal["linear", "cosine", "constant"] = "linear",
                 min_ratio: float = 0.0) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at optimizer step s (0-based; for ``LambdaLR``): linear warmup over
    ``warmup`` steps, then linear or cosine decay to ``min_ratio`` at step ``total``, or constant."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        shape = 1 - progress if schedule == "linear" else 0.5 * (1 + math.cos(math.pi * progress))
        return min_ratio + (1 - min_ratio) * shape

    return factor
