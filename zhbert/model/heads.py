"""Heads on top of the trunk's (B, T, H) output: MLM (tied decoder), [CLS] classification (also the
NSP / SOP pair head), token classification and span start/end."""

from __future__ import annotations

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


class ClassificationHead(nn.Module):
    """BERT's pooler (dense + tanh on [CLS]) then a linear classifier. With two labels it is the
    NSP / SOP pair head of pretraining; otherwise the sentence(-pair) classification head."""

    def __init__(self, cfg: ModelConfig, num_labels: int) -> None:
        super().__init__()
        self.pool = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.dropout = nn.Dropout(cfg.hidden_dropout)
        self.out = nn.Linear(cfg.hidden_size, num_labels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h (B, T, H) → logits (B, num_labels)."""
        return self.out(self.dropout(torch.tanh(self.pool(h[:, 0]))))


class TokenClassificationHead(nn.Module):
    """A label per token (NER tagging): dropout and a linear layer."""

    def __init__(self, cfg: ModelConfig, num_labels: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout(cfg.hidden_dropout)
        self.out = nn.Linear(cfg.hidden_size, num_labels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h (B, T, H) → logits (B, T, num_labels)."""
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
