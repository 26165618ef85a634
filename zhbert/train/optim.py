"""The optimizer pretraining and fine-tuning share: AdamW with no weight decay on vectors."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def adamw(params: Iterable[nn.Parameter], lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999),
          eps: float = 1e-8) -> torch.optim.AdamW:
    """AdamW over the trainable ``params``; biases, LayerNorms and other vectors (ndim < 2) are not decayed."""
    params = [p for p in params if p.requires_grad]
    return torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                             lr=lr, betas=betas, eps=eps)
