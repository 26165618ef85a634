"""The one encoder trunk: bidirectional self-attention blocks, post-LN (BERT) or pre-LN as a flag, positions from
the embedding (learned) or rotary inside attention (``ModelConfig.position``).

Single-device code on purpose: DeepSpeed / FSDP / compile are applied from outside. Attention runs
through ``F.scaled_dot_product_attention`` so the backend (flash / memory-efficient / math) is
picked by PyTorch for the device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zhbert.model.config import ModelConfig
from zhbert.model.embeddings import FusionEmbeddings

Rope = tuple[torch.Tensor, torch.Tensor]  # cos, sin (T, head size): the rotary angles of one sequence length


def rotary(T: int, head_size: int, like: torch.Tensor, base: float = 10000.0) -> Rope:
    """RoFormer's angles: channel pair i of position t turned by t·base^(-2i/head_size). Computed per call in fp32
    (not a buffer, which bf16 casting would coarsen), then cast to ``like``'s dtype; the pair of a channel c is
    c + head_size/2 (GPT-NeoX's halves layout, as ``rotate``)."""
    inv_freq = base ** -(torch.arange(0, head_size, 2, dtype=torch.float32, device=like.device) / head_size)
    angles = torch.outer(torch.arange(T, dtype=torch.float32, device=like.device), inv_freq)  # (T, hs/2)
    angles = torch.cat((angles, angles), dim=-1)  # (T, hs)
    return angles.cos().to(like.dtype), angles.sin().to(like.dtype)


def rotate(x: torch.Tensor, rope: Rope) -> torch.Tensor:
    """x (B, nh, T, hs) with each channel pair turned by its position's angle: q·k then depends on the offset."""
    cos, sin = rope
    a, b = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-b, a), dim=-1) * sin


class SelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head = cfg.num_heads
        self.dropout = cfg.attention_dropout
        # q, k, v in one matmul; convert.py splits / joins HF's separate query/key/value
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size)
        self.proj = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.proj_dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, rope: Rope | None = None) -> torch.Tensor:
        """x (B, T, H); mask (B, 1, 1, T) or (B, 1, T, T) bool, True where a key may be attended to; rope: the
        rotary angles (``rotary``) when positions are rotary."""
        B, T, H = x.shape
        q, k, v = self.qkv(x).split(H, dim=2)
        q, k, v = (t.view(B, T, self.n_head, H // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        if rope is not None:
            q, k = rotate(q, rope), rotate(k, rope)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, H)
        return self.proj_dropout(self.proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))  # exact (erf) GELU, as BERT


class Block(nn.Module):
    """Post-LN: x = LN(x + f(x)), BERT's layout. Pre-LN: x = x + f(LN(x))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.pre_ln = cfg.pre_ln
        self.attn = SelfAttention(cfg)
        self.ln1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = MLP(cfg)
        self.ln2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, rope: Rope | None = None) -> torch.Tensor:
        if self.pre_ln:
            x = x + self.attn(self.ln1(x), mask, rope)
            return x + self.mlp(self.ln2(x))
        x = self.ln1(x + self.attn(x, mask, rope))
        return self.ln2(x + self.mlp(x))


class Encoder(nn.Module):
    """``num_layers`` blocks; with ``share_layers`` one block is applied ``num_layers`` times."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.num_layers = cfg.num_layers
        self.head_size = cfg.hidden_size // cfg.num_heads
        self.rope = cfg.position == "rope"
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(1 if cfg.share_layers else cfg.num_layers))
        # pre-LN leaves the residual stream un-normalised: one LayerNorm at the top
        self.ln_f = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps) if cfg.pre_ln else nn.Identity()

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor,
                document_ids: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, H); attention_mask (B, T), 1 = real token, 0 = padding; document_ids (B, T) or None: tokens
        attend only within their document. Returns (B, T, H)."""
        return self.layers(x, attention_mask, document_ids)[-1]

    def layers(self, x: torch.Tensor, attention_mask: torch.Tensor,
               document_ids: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The input and every block's output, the last one after ``ln_f``: num_layers + 1 tensors (B, T, H),
        for features taken from several layers (fine-tuning's ELMo-style layer mix)."""
        mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T): padded keys get no attention
        if document_ids is not None:  # (B, 1, T, T) block-diagonal; a padded query sees only itself, never NaN
            same = document_ids[:, None, :, None] == document_ids[:, None, None, :]
            mask = (mask & same) | torch.eye(x.shape[1], dtype=torch.bool, device=x.device)
        rope = rotary(x.shape[1], self.head_size, x) if self.rope else None  # positions count along the row
        out = [x]
        for i in range(self.num_layers):
            out.append(self.blocks[i % len(self.blocks)](out[-1], mask, rope))
        out[-1] = self.ln_f(out[-1])
        return out


def init_weights(module: nn.Module, std: float) -> None:
    """BERT init, the one place for it: weights N(0, std), biases 0, LayerNorm 1 / 0 — and the fusion Linear, which
    starts norm-preserving: its char block the identity, its glyph and pinyin blocks orthogonal. With N(0, 0.02)
    the fusion Linear shrank the char vector to 0.02·√H of its length (a tenth at H = 64), below the position and
    segment vectors, so every character came out of the LayerNorm alike (mean pairwise cosine 0.99 against 0.63
    for the char embedding); this way a fresh fusion model embeds characters as a char model does.

    Applied with ``model.apply(partial(init_weights, std=cfg.initializer_range))`` (children before parents, so
    the fusion module overrides its Linear's init); buffers (glyph and pinyin letter tables) are data, not
    weights, and are left alone.
    """
    if isinstance(module, FusionEmbeddings):
        H, width = module.fuse.weight.shape
        E = width // (1 + len(module.inputs))
        blocks = [torch.eye(H, E)] + [nn.init.orthogonal_(torch.empty(H, E)) for _ in module.inputs]
        with torch.no_grad():
            module.fuse.weight.copy_(torch.cat(blocks, dim=1))
    elif isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(getattr(module, "bias", None), nn.Parameter):  # the MLM decoder's own bias
        nn.init.zeros_(module.bias)
