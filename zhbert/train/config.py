"""The pretraining config: one typed tree, written once. configs/pretrain/*.toml are short deltas over it
(``extends`` another file); the DeepSpeed config is derived from it (zhbert.train.engine), never kept by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from zhbert.config import ConfigError
from zhbert.data.masking import MaskingConfig
from zhbert.model.config import ModelConfig


@dataclass
class DataConfig:
    """Where the prepared data is (`zhbert prep`, `zhbert vocab`, `zhbert glyphs`)."""

    shards: str = "data/demo/shards"
    """Shard folder: the char view for char and fusion models, the word view (shards-word) for word models."""
    vocab: str = "data/demo/vocab"
    """Vocab folder: tokenizer.json, vocab.txt, pinyin_vocab.txt (and word_vocab.txt for word models). The
    model's vocab sizes are read from these files; the shards' manifest must name the same vocab hashes."""
    glyphs: str = "data/demo/glyphs"
    """Glyph table folder (glyphs.npy + glyphs.json), rendered from the same vocab. Fusion models only."""
    eval_percent: float = 1.0
    """Share of documents (by a hash of their id, so char and word views hold out the same ones) kept out of
    training for evaluation."""
    eval_sequences: int = 256
    """At most this many held-out sequences are evaluated each time (the same ones, with the same masks)."""


@dataclass
class OptimConfig:
    """AdamW with warmup then decay; weight decay skips biases, LayerNorms and embeddings of positions/types."""

    lr: float = 1e-4
    """Peak learning rate, reached after ``warmup_steps``."""
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-6
    warmup_steps: int = 0
    """Linear warmup from 0 to ``lr``."""
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    """Decay after warmup, down to ``min_lr_ratio * lr`` at the last step."""
    min_lr_ratio: float = 0.0
    clip: float = 1.0
    """Gradient clipping by global norm (0: off)."""


@dataclass
class EngineConfig:
    """How DeepSpeed runs the step; see zhbert.train.engine.build_ds_config for the keys these become."""

    zero_stage: int = 1
    """ZeRO stage 0-3: 1 partitions optimizer state, 2 also gradients, 3 also parameters."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """bf16 keeps fp32 master weights in the optimizer (DeepSpeed's bf16 mode); fp16 is not offered."""
    offload_optimizer: bool = False
    """ZeRO-Offload: optimizer state and step on the CPU (stage 1-3)."""
    offload_params: bool = False
    """ZeRO-Infinity style parameter offload to the CPU (stage 3 only)."""
    ds_config: str | None = None
    """Your own ds_config.json, merged with the derived one; a key that both set to different values is an
    error naming both, never silently overridden."""
    compile: bool = False
    """``torch.compile`` the trunk and the heads (inductor, zhbert.train.engine.compile_parts) with
    ``fullgraph=True``: a graph break is an error, not a silent slow path. The fusion embedding then computes
    glyph features for the whole vocab (``model.fusion_rows``). The first steps pay for the compilation (about a
    minute on a small CPU). ZeRO-1/2 only: ZeRO-3 gathers parameters in hooks on every module, each a graph break.
    """


@dataclass
class PretrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)

    output: str = "runs/pretrain"
    """Run folder: checkpoints/, metrics.jsonl, tensorboard/, export/."""
    steps: int = 1000
    """Optimizer steps; the budget the comparison holds equal across variants."""
    batch_size: int = 256
    """Sequences per optimizer step, all ranks together (= micro_batch × ranks × accumulation)."""
    micro_batch: int = 32
    """Sequences per rank per forward pass; gradient accumulation makes up the rest of ``batch_size``."""
    seed: int = 0
    """Seeds initialisation, data order and dropout (masking has its own ``masking.seed``)."""
    log_every: int = 10
    """Steps between training-metric records (loss, lr, tokens/s)."""
    eval_every: int = 200
    """Steps between held-out evaluations (and at the last step)."""
    save_every: int = 500
    """Steps between checkpoints (and at the last step)."""
    keep_checkpoints: int = 2
    """Checkpoints kept; older ones are deleted once a newer one is complete."""
    tensorboard: bool = True
    """Also write the metrics as TensorBoard events under ``output/tensorboard``."""

    def __post_init__(self) -> None:
        if not 0 <= self.engine.zero_stage <= 3:
            raise ConfigError(f"engine.zero_stage must be 0, 1, 2 or 3, got {self.engine.zero_stage}")
        if self.engine.precision == "bf16" and self.engine.zero_stage == 0:
            raise ConfigError("engine.precision = 'bf16' needs engine.zero_stage >= 1: at stage 0 DeepSpeed's bf16 "
                              "optimizer writes checkpoints its zero_to_fp32 cannot consolidate into the export")
        if self.engine.compile and self.engine.zero_stage == 3:
            raise ConfigError("engine.compile needs engine.zero_stage <= 2: ZeRO-3 gathers parameters in hooks on "
                              "every module that DeepSpeed keeps out of compilation (torch.compiler.disable), so "
                              "the graph breaks at each")
        if self.engine.offload_params and self.engine.zero_stage != 3:
            raise ConfigError("engine.offload_params needs engine.zero_stage = 3")
        if self.engine.offload_optimizer and self.engine.zero_stage == 0:
            raise ConfigError("engine.offload_optimizer needs engine.zero_stage >= 1")
        if (self.masking.pairs == "none") != (self.model.pair_head == "none") or (
                self.masking.pairs != "none" and self.masking.pairs != self.model.pair_head):
            raise ConfigError(f"masking.pairs = {self.masking.pairs!r} must match model.pair_head = "
                              f"{self.model.pair_head!r}")
        for name in ("steps", "batch_size", "micro_batch", "log_every", "eval_every", "save_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("eval_every", "save_every"):  # so the counts saved and evaluated against are whole
            if getattr(self, name) % self.log_every:
                raise ConfigError(f"{name} ({getattr(self, name)}) must be a multiple of log_every ({self.log_every})")

    def accumulation(self, world_size: int) -> int:
        """Gradient accumulation steps; an error when the batch does not divide over ranks and micro-batches."""
        per_step = self.micro_batch * world_size
        if self.batch_size % per_step:
            raise ConfigError(f"batch_size {self.batch_size} does not divide into micro_batch {self.micro_batch} × "
                              f"{world_size} rank(s) = {per_step} sequences per micro-step")
        return self.batch_size // per_step
