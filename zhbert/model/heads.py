"""Heads on top of the trunk's (B, T, H) output: MLM (tied decoder), [CLS] classification (also the
NSP / SOP pair head), token classification and span start/end."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from zhbert.model.config import ModelConfig


class MLMHead(nn.Module):
    """BERT's transform (dense, GELU, LayerNorm) then the decoder, whose weight is the input token
    table passed in at call time (tied, so it is stored once). With factorised embeddings the
    transform maps H → E and the decoder works in E, as in ALBERT."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.emb_dim)
        self.ln = nn.LayerNorm(cfg.emb_dim, eps=cfg.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(cfg.token_vocab_size))

    def forward(self, h: torch.Tensor, decoder_weight: torch.Tensor) -> torch.Tensor:
        """h (..., H), decoder_weight (V, E) → logits (..., V). Call it on the masked positions only:
        the decoder is the largest matmul of pretraining."""
        return F.linear(self.ln(F.gelu(self.dense(h))), decoder_weight, self.bias)


Pooling = Literal["cls", "mean"]
POOLINGS: tuple[str, ...] = Pooling.__args__


class ClassificationHead(nn.Module):
    """BERT's pooler (dense + tanh) then a linear classifier. With two labels it is the NSP / SOP pair head of
    pretraining; otherwise the sentence(-pair) classification head.

    ``pooling`` is the vector the pooler reads: ``cls``, the [CLS] position (BERT), or ``mean``, the mean over the
    real tokens. Pretraining with masked-LM alone never trains [CLS]'s output, so it starts fine-tuning nearly alike
    for every input (mean pairwise cosine 0.95 in the tiny demo's models, 1.000 untrained) and a pair task then
    sits at chance for a number of epochs that differs by seed (docs/learning.md §18)."""

    def __init__(self, cfg: ModelConfig, num_labels: int, pooling: Pooling = "cls") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; known: {', '.join(POOLINGS)}")
        self.pooling = pooling
        self.pool = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.dropout = nn.Dropout(cfg.hidden_dropout)
        self.out = nn.Linear(cfg.hidden_size, num_labels)

    def forward(self, h: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """h (B, T, H), attention_mask (B, T) 1 on real tokens, which ``mean`` needs (the pair head of pretraining
        reads [CLS] and is called without it) → logits (B, num_labels)."""
        if self.pooling == "cls":
            x = h[:, 0]
        else:
            keep = attention_mask.to(h.dtype)[..., None]  # (B, T, 1)
            x = (h * keep).sum(1) / keep.sum(1).clamp(min=1)
        return self.out(self.dropout(torch.tanh(self.pool(x))))


class TokenClassificationHead(nn.Module):
    """A label per token (NER tagging): dropout and a linear layer."""

    def __init__(self, cfg: ModelConfig, num_labels: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout(cfg.hidden_dropout)
        self.out = nn.Linear(cfg.hidden_size, num_labels)

    def forward(self, h: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """h (B, T, H) → logits (B, T, num_labels). ``attention_mask`` is accepted and unused (every position gets
        a label; the loss skips padding), so both classifier heads are called alike."""
        return self.out(self.dropout(h))


class SpanHead(nn.Module):
    """Extractive QA (CMRC2018): a start and an end score per token; padding can never be chosen."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.out = nn.Linear(cfg.hidden_size, 2)

    def forward(self, h: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """h (B, T, H) → logits (B, T, 2): [..., 0] start, [..., 1] end; padded positions get -inf."""
        logits = self.out(h)
        return logits.masked_fill(~attention_mask.bool()[..., None], float("-inf"))
