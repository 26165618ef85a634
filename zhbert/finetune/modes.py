"""Transfer modes, applied from outside the model to a ``ZhBertFor*`` model loaded from an export:

    full                every weight trains
    feature-embeddings  trunk frozen; the head reads the embedding layer's output
    feature-top         trunk frozen; the head reads the top layer
    feature-mix         trunk frozen; the head reads γ · Σ_j softmax(s)_j · h_j over the embedding output and
                        every layer (ELMo's scalar mix: s and γ are learned)
    adapter             trunk frozen; a bottleneck adapter (H → r → H, GELU, residual, zero-initialised up
                        projection so training starts from the pretrained function) after the attention and
                        after the MLP of every block, as Houlsby et al. 2019; adapters, the blocks' LayerNorms
                        and the head train

A frozen trunk runs in eval mode (no dropout) and without gradients in the feature modes. In any mode a fusion
trunk's glyph and pinyin nets can be kept as loaded (``freeze_fusion_nets``), which makes its steps cheaper.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from zhbert.model.embeddings import FusionEmbeddings
from zhbert.model.model import ZhBertModel

Mode = Literal["full", "feature-embeddings", "feature-top", "feature-mix", "adapter"]
MODES: tuple[str, ...] = Mode.__args__


class Adapter(nn.Module):
    def __init__(self, hidden: int, size: int) -> None:
        super().__init__()
        self.down = nn.Linear(hidden, size)
        self.up = nn.Linear(size, hidden)
        nn.init.normal_(self.down.weight, std=0.02)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(F.gelu(self.down(x)))


class WithAdapter(nn.Module):
    """A block's sublayer (attention or MLP) followed by an adapter, before the block's residual add."""

    def __init__(self, sublayer: nn.Module, adapter: Adapter) -> None:
        super().__init__()
        self.sublayer, self.adapter = sublayer, adapter

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.sublayer(*args))


class FinetuneModel(nn.Module):
    """A fine-tuning model used in one mode: ``forward(batch)`` → (logits, loss or None)."""

    def __init__(self, model: ZhBertModel, mode: Mode, adapter_size: int = 64,
                 freeze_fusion_nets: bool = False) -> None:
        """``freeze_fusion_nets``: a fusion trunk's glyph and pinyin nets stay as loaded, their features kept in
        tables (``FusionEmbeddings.freeze_nets``), in any mode."""
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        self.model, self.mode = model, mode
        bert = model.bert
        if mode != "full":
            bert.requires_grad_(False)
        if freeze_fusion_nets and isinstance(bert.embeddings, FusionEmbeddings):
            bert.embeddings.freeze_nets()
        if mode == "adapter":
            H = model.cfg.hidden_size
            for block in bert.encoder.blocks:
                block.attn = WithAdapter(block.attn, Adapter(H, adapter_size))
                block.mlp = WithAdapter(block.mlp, Adapter(H, adapter_size))
                for ln in (block.ln1, block.ln2):
                    ln.requires_grad_(True)
            bert.encoder.ln_f.requires_grad_(True)
        if mode == "feature-mix":
            self.layer_weights = nn.Parameter(torch.zeros(model.cfg.num_layers + 1))  # s: softmax → equal mix
            self.gamma = nn.Parameter(torch.ones(()))

    def train(self, mode: bool = True) -> FinetuneModel:
        super().train(mode)
        if self.mode.startswith("feature"):
            self.model.bert.eval()  # frozen features: no dropout
        return self

    def hidden(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The representation the head reads, (B, T, H)."""
        bert = self.model.bert
        args = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], batch["pinyin_ids"])
        if not self.mode.startswith("feature"):
            return bert(*args)
        with torch.no_grad():
            x = bert.embeddings(args[0], args[2], args[3])  # (B, T, H)
            if self.mode == "feature-embeddings":
                return x
            if self.mode == "feature-top":
                return bert.encoder(x, args[1])
            layers = torch.stack(bert.encoder.layers(x, args[1]))  # (L+1, B, T, H)
        w = torch.softmax(self.layer_weights, dim=0)
        return self.gamma * torch.einsum("l,lbth->bth", w, layers)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        targets = {k: batch[k] for k in ("labels", "start_positions", "end_positions") if k in batch}
        out = self.model.from_hidden(self.hidden(batch), batch["attention_mask"], **targets)
        return out.logits, out.loss

    def trainable(self) -> dict[str, nn.Parameter]:
        return {k: p for k, p in self.named_parameters() if p.requires_grad}

    def counts(self) -> tuple[int, int]:
        """(trainable, total) parameters; the fixed glyph and pinyin letter tables are buffers, not counted."""
        return (sum(p.numel() for p in self.trainable().values()), sum(p.numel() for p in self.parameters()))
