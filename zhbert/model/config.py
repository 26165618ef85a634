"""The model's one typed config, and what each model kind reads (``ModelConfig.inputs``). Defaults are BERT-base
with the char embedding; configs/model/*.toml are short deltas over it, loaded with
``zhbert.config.load(ModelConfig, path, overrides)``. The table sizes (vocab, word vocab, pinyin vocab) come from
the vocab files when a run or an export is loaded (``sized``), never from a config file."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from zhbert.config import ConfigError
from zhbert.layout import CHAR_VIEW, VOCAB, WORD_VIEW, WORD_VOCAB

EmbeddingKind = Literal["char", "word", "fusion"]


@dataclass(frozen=True)
class KindInputs:
    """What a model kind reads, so that prep's output, pretraining, export and fine-tuning ask one place. A new
    kind is a row of ``ModelConfig.inputs`` plus its embedding class (zhbert/model/embeddings.py)."""

    view: str
    """The shard format it trains on (zhbert/layout.py: CHAR_VIEW, WORD_VIEW); the work folder names its folder."""
    tokens: str
    """The vocab file its token ids (and MLM labels) index: the char vocab, or the word vocab (chars first)."""
    glyphs: bool = False
    """Reads the glyph table (glyphs.npy; the export keeps its glyphs.json)."""
    pinyin: bool = False
    """Reads pinyin ids (and the pinyin letter table built from pinyin_vocab.txt)."""

    @property
    def eval_units(self) -> tuple[str, ...]:
        """How held-out rows are masked: by whole words, and by single characters where a token is one character."""
        return ("word",) if self.view == WORD_VIEW else ("word", "char")


@dataclass
class ModelConfig:
    embedding: EmbeddingKind = "char"
    """Which input embedding feeds the trunk: char ids, word ids (word-level baseline) or
    char ‖ glyph ‖ pinyin fusion (ChineseBERT-style). The trunk and heads are the same for all."""

    vocab_size: int = 21128
    """Rows of the char vocab (the tokenizer's). Glyph table rows must match. Set from vocab.txt by ``sized``."""
    word_vocab_size: int = 0
    """Rows of the word vocab: the char vocab first, unchanged, then multi-char words. Only the
    word embedding uses it, and then it must be larger than ``vocab_size``. Set from word_vocab.txt by ``sized``."""
    pinyin_vocab_size: int = 0
    """Rows of the pinyin vocab ([PAD], [UNK], [MASK], then toned syllables). Fusion only; the
    letter table handed to the model must have this many rows. Set from pinyin_vocab.txt by ``sized``."""

    hidden_size: int = 768
    """Width H of the trunk."""
    num_layers: int = 12
    """Transformer blocks applied (also when they share one set of weights)."""
    num_heads: int = 12
    """Attention heads; ``hidden_size`` must divide by it."""
    intermediate_size: int = 3072
    """Width of the MLP inside each block."""
    max_position: int = 512
    """The longest sequence the model takes (with ``position = "learned"`` the rows of the position table)."""
    position: Literal["learned", "rope"] = "learned"
    """How the trunk knows where a token stands. ``learned``: BERT's table of absolute positions added to the
    embedding (needed for HF parity). ``rope``: rotary positions inside attention (RoFormer, ModernBERT), no table:
    a query-key score depends on how far apart the two tokens are, so "look at my neighbour" needs no learning.
    The tiny char model reaches 2.9 times the unigram's held-out accuracy in 600 steps with it, 1.3 times with learned
    positions (docs/learning.md §9)."""
    type_vocab_size: int = 2
    """Segment ids (sentence A / B) for pair tasks."""
    hidden_dropout: float = 0.1
    """Dropout on embeddings, residual branches and classifier inputs."""
    attention_dropout: float = 0.1
    """Dropout on attention probabilities."""
    layer_norm_eps: float = 1e-12
    """BERT's epsilon; kept so Hugging Face weights give the same numbers."""
    pre_ln: bool = False
    """False: post-LN as in BERT (needed for HF parity). True: pre-LN blocks and a final LayerNorm,
    which trains more stably at high learning rates and depth."""
    initializer_range: float = 0.02
    """Std of the normal init of every weight matrix and embedding (BERT)."""

    embedding_size: int | None = None
    """ALBERT-style factorised embedding width E < H: token tables are V×E, projected to H, and the
    tied MLM decoder works in E. None: E = H, no projection."""
    share_layers: bool = False
    """ALBERT-style cross-layer sharing: one block's weights applied ``num_layers`` times."""

    fusion_inputs: list[Literal["glyph", "pinyin"]] = field(default_factory=lambda: ["glyph", "pinyin"])
    """What the fusion embedding fuses with the char embedding: glyph and pinyin (ChineseBERT), or one of
    them for the glyph-only / pinyin-only ablations."""
    num_fonts: int = 4
    """Fonts in the glyph table (second axis of the uint8 [V, fonts, S, S] table); 4 is what
    ``zhbert glyphs`` renders by default (song, kai, hei, xingkai)."""
    glyph_size: int = 24
    """Glyph bitmap side S in pixels."""
    glyph_net: Literal["cnn", "linear"] = "cnn"
    """Trainable net from a char's glyph bitmaps to a feature: a small CNN, or a linear projection
    of the flattened pixels as in ChineseBERT."""
    glyph_channels: int = 32
    """Channels of the first glyph CNN layer (the second has twice as many)."""
    glyph_trainable: bool = False
    """Make the glyph table itself a trainable parameter (ChineseBERT's choice) instead of a fixed
    uint8 buffer; for comparison only: it adds V·fonts·S² parameters."""
    pinyin_max_letters: int = 7
    """Letters per syllable in the letter table (a-z plus a tone digit 1-5; ü written v)."""
    pinyin_channels: int = 128
    """Width of the letter embeddings, the input channels of the pinyin CNN (its output is E)."""
    fusion_rows: Literal["auto", "distinct", "vocab"] = "auto"
    """Which char ids the fusion embedding computes glyph features for. ``distinct``: the ids in the batch
    (``torch.unique``: the fewest glyph passes, but a data-dependent shape, hence a host sync on an accelerator
    and a graph break under ``torch.compile``). ``vocab``: the whole vocab in one batched pass, gathered per
    token (static shapes). ``auto``: ``distinct`` in eager mode on the CPU, where it is faster
    (docs/benchmarks.md), ``vocab`` on an accelerator and under ``torch.compile``."""

    pair_head: Literal["none", "nsp", "sop"] = "none"
    """Sentence-pair objective trained next to MLM: none, next-sentence or sentence-order
    prediction (same 2-way head on [CLS]; the collator makes the labels)."""

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"hidden_size {self.hidden_size} must divide by num_heads {self.num_heads}")
        if self.position == "rope" and (self.hidden_size // self.num_heads) % 2:
            raise ConfigError(f"position = 'rope' turns pairs of channels: the head size "
                              f"{self.hidden_size // self.num_heads} must be even")
        if not self.fusion_inputs or len(set(self.fusion_inputs)) != len(self.fusion_inputs):
            raise ConfigError(f"fusion_inputs must name glyph and/or pinyin once each, got {self.fusion_inputs} "
                              "(a char-only model is embedding = 'char')")
        if self.embedding_size is not None and not 0 < self.embedding_size <= self.hidden_size:
            raise ConfigError(f"embedding_size must be in 1..hidden_size, got {self.embedding_size}")

    @property
    def inputs(self) -> KindInputs:
        """What this kind reads (``KindInputs``)."""
        if self.embedding == "word":
            return KindInputs(WORD_VIEW, WORD_VOCAB)
        fusion = self.fusion_inputs if self.embedding == "fusion" else []
        return KindInputs(CHAR_VIEW, VOCAB, glyphs="glyph" in fusion, pinyin="pinyin" in fusion)

    def sized(self, vocab: int, word_vocab: int, pinyin_vocab: int) -> ModelConfig:
        """This config with the table sizes of the vocab files it will read (``word_vocab`` is ignored unless the
        kind reads the word vocab), checked."""
        word = word_vocab if self.inputs.tokens == WORD_VOCAB else 0
        return replace(self, vocab_size=vocab, word_vocab_size=word, pinyin_vocab_size=pinyin_vocab).check_sized()

    def check_sized(self) -> ModelConfig:
        """Raise unless the table sizes a model of this kind needs are set (``sized``); returns self."""
        if self.inputs.tokens == WORD_VOCAB and self.word_vocab_size <= self.vocab_size:
            raise ConfigError(f"embedding='word' needs word_vocab_size > vocab_size ({self.vocab_size}): "
                              "the word vocab is the char vocab followed by multi-char words")
        if self.inputs.pinyin and self.pinyin_vocab_size < 1:
            raise ConfigError("embedding='fusion' needs pinyin_vocab_size (rows of pinyin_vocab.txt)")
        return self

    @property
    def emb_dim(self) -> int:
        """E: width of token tables and of the tied MLM decoder."""
        return self.embedding_size or self.hidden_size

    @property
    def token_vocab_size(self) -> int:
        """Rows of the token table the input ids (and MLM labels) index."""
        return self.word_vocab_size if self.embedding == "word" else self.vocab_size
