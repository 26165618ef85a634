"""The pretraining config: one typed tree, written once. configs/pretrain/*.toml are short deltas over it
(``extends`` another file); the DeepSpeed config is derived from it (zhbert.train.engine), never kept by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from zhbert.config import ConfigError
from zhbert.layout import DEFAULT_WORK, WorkDir
from zhbert.model.config import ModelConfig
from zhbert.train.masking import MaskingConfig


@dataclass
class DataConfig:
    """Where the prepared data is (`zhbert demo`, or `zhbert prep`, `zhbert vocab`, `zhbert glyphs`)."""

    work: str = DEFAULT_WORK
    """The work folder (zhbert/layout.py) that ``shards``, ``vocab`` and ``glyphs`` default to parts of."""
    shards: str = ""
    """Shard folder; empty: the view the model kind trains on in ``work`` (``ModelConfig.inputs``: shards/, the
    char view, for char and fusion models; shards-word/, the word view, for word models)."""
    vocab: str = ""
    """Vocab folder (empty: ``work``/vocab): tokenizer.json, vocab.txt, pinyin_vocab.txt (and word_vocab.txt for
    word models). The model's vocab sizes are read from these files; the shards' manifest must name the same
    vocab hashes."""
    glyphs: str = ""
    """Glyph table folder (empty: ``work``/glyphs; glyphs.npy + glyphs.json), rendered from the same vocab. Fusion
    models only."""
    eval_percent: float = 1.0
    """Share of documents (by a hash of their id, so char and word views hold out the same ones) kept out of
    training for evaluation."""
    eval_sequences: int = 256
    """At most this many held-out sequences (packed like the training ones) are evaluated each time (the same
    ones, with the same masks)."""
    pack: bool = True
    """Fill each sequence with whole shard rows, up to ``pack_len`` tokens: ``[CLS] row [SEP] row [SEP] …`` (each
    row's own [CLS] dropped), so the computed positions are real tokens, not padding (RoBERTa's FULL-SENTENCES,
    over the rows prep cut from documents). The rows are grouped once per run (best fit, seeded), the groups
    shuffled every epoch; a word model groups its rows as the char view does, so both see the same text."""
    pack_len: int = 0
    """Tokens per packed sequence; 0: the model's ``max_position``."""
    pack_attention: Literal["across", "within"] = "across"
    """across: a token attends to every token of its packed sequence, as RoBERTa's (the [SEP] between rows marks
    the seam); within: only to the tokens of its own row (a block-diagonal (B, T, T) attention mask)."""
    workers: int = 0
    """Processes that read and collate training batches in the background (zhbert.train.loader), forked from each
    rank; 0: on the training thread. Collation is a pure function of (step, micro-batch, rank, seeds), so any
    number gives the same batches and resume stays exact. On a GPU node give each rank 1-2 (the training thread
    alone collated 14,000-19,000 packed sequences of 128 tokens a second on this 2-core box; a BERT-base step on
    one H100-class GPU needs about 5,000). The default 0 is measured (docs/benchmarks.md "Collation"): on the idle
    box 2 workers gave 1.24× the thread's rate, but with the demo's two ranks on both cores 0.47×."""
    prefetch: int = 2
    """Micro-batches each worker prepares ahead (the DataLoader's ``prefetch_factor``); unused with 0 workers."""


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
    init: str = ""
    """A Hugging Face BERT folder (``BertForMaskedLM`` / ``BertForPreTraining``, safetensors) to start a fresh run
    from: the trunk, MLM head and char rows (matched by token string through its vocab.txt); see
    zhbert/model/hf_init.py. A resumed run continues from its checkpoint instead."""

    def __post_init__(self) -> None:
        work = WorkDir(self.data.work)
        self.data.shards = self.data.shards or str(work.view(self.model.inputs.view))
        self.data.vocab = self.data.vocab or str(work.vocab)
        self.data.glyphs = self.data.glyphs or str(work.glyphs)
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
        if self.data.pack and self.masking.pairs != "none":
            raise ConfigError(f"masking.pairs = {self.masking.pairs!r} needs data.pack = false: a pair objective "
                              "reads one [CLS] per row, and a packed sequence holds several rows")
        if self.data.workers < 0 or self.data.prefetch < 1:
            raise ConfigError(f"data.workers ({self.data.workers}) must be ≥ 0 and data.prefetch "
                              f"({self.data.prefetch}) ≥ 1")
        if self.data.pack_len < 0 or (self.data.pack_len and self.data.pack_len > self.model.max_position):
            raise ConfigError(f"data.pack_len = {self.data.pack_len} must be between 0 (= model.max_position) and "
                              f"model.max_position ({self.model.max_position})")
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
