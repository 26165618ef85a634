"""Input embeddings, one class per ``ModelConfig.embedding`` value; each returns (B, T, H).

- char:   token + learned position + segment → LayerNorm → dropout (BERT; HF-compatible names). With rotary
          positions (``ModelConfig.position = "rope"``) there is no position table: attention turns q and k.
- word:   the same over the word vocab (char vocab first, then multi-char words).
- fusion: char ‖ glyph ‖ pinyin → Linear(3E → H), + position (learned) + segment → LayerNorm → dropout
          (ChineseBERT). Glyph features come from a fixed uint8 table through a small trainable net,
          pinyin features from a CNN over the letters of each syllable.

Glyph and pinyin features depend only on the char id and the pinyin id, so they are computed once
per distinct id in the batch or once per char of the vocab (glyphs: ``ModelConfig.fusion_rows``; the
vocab's 21 k glyphs in one batched pass keep every shape static, for accelerators and ``torch.compile``),
or once per syllable of the vocab (pinyin, 1.5 k of them), never per token, and gathered. The fusion
Linear over the concatenation is split into its three column blocks (W [c‖g‖p] = W_c c + W_g g + W_p p),
which lets each block also run per id: per token only a gather and two adds remain. Fine-tuning can fix the two
nets and keep their features as tables (``FusionEmbeddings.freeze_nets``): a step is then gathers and matmuls only.

Glyph and pinyin features are *centred*: a glyph's feature minus the feature of the vocab's mean glyph
image, a syllable's minus the mean over the syllables of the vocab. Without it the shared glyph and pinyin
nets grew a component that every character shares (after 200 tiny demo steps the glyph block was 1.13 long,
0.10 of it varying between characters), the LayerNorm then left characters nearly alike (mean pairwise
cosine 0.999 against 0.71 for the char model) and fine-tuning fell to the majority class; a shared offset is
the fusion bias's job, not theirs. (The fusion Linear's init is the other half: zhbert.model.encoder.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zhbert.model.config import ModelConfig

# Pinyin letter ids: 0 pads a syllable, then a-z, tone digits 1-5, and one symbol each for the
# [UNK] and [MASK] pinyin entries so that they get features of their own. [PAD] (non-hanzi tokens
# and padding) is spelt with no letters at all.
PINYIN_LETTERS = ["<pad>", *"abcdefghijklmnopqrstuvwxyz", *"12345", "[UNK]", "[MASK]"]
_LETTER_ID = {c: i for i, c in enumerate(PINYIN_LETTERS)}
_SYLLABLE = re.compile(r"[a-z]+[1-5]")
SPECIAL_SYLLABLES = 3  # [PAD] [UNK] [MASK] open the pinyin vocab (zhbert.data.pinyin.PinyinVocab.SPECIALS)


def spell_pinyin(syllables: Sequence[str], max_letters: int = 7) -> torch.Tensor:
    """The pinyin vocab (line i of pinyin_vocab.txt = id i) → letter ids, LongTensor (P, max_letters).

    Syllables are lowercase toned pinyin (``zhong1``, ``lv4``, neutral tone ``de5``); the specials
    ``[PAD]``, ``[UNK]``, ``[MASK]`` are recognised by name. Anything else is an error, so a vocab
    written in another convention (tone marks, ü) fails here rather than training on garbage.
    """
    table = torch.zeros(len(syllables), max_letters, dtype=torch.long)
    for i, s in enumerate(syllables):
        if s == "[PAD]":
            continue
        if s in ("[UNK]", "[MASK]"):
            table[i, 0] = _LETTER_ID[s]
        elif _SYLLABLE.fullmatch(s) and len(s) <= max_letters:
            table[i, : len(s)] = torch.tensor([_LETTER_ID[c] for c in s])
        else:
            raise ValueError(f"pinyin vocab entry {i} {s!r} is not a toned syllable like 'zhong1' "
                             f"(a-z, ü as v, tone 1-5, at most {max_letters} characters)")
    return table


def add_positions(x: torch.Tensor, positions: nn.Embedding | None) -> torch.Tensor:
    """x (B, T, E) plus the learned position of each column; unchanged without a table (rotary positions, which
    attention applies: zhbert.model.encoder)."""
    return x if positions is None else x + positions.weight[: x.shape[1]]


class CharEmbeddings(nn.Module):
    """BERT embeddings over the char vocab; with E < H (ALBERT) the sum is projected to H."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        E = cfg.emb_dim
        self.tokens = nn.Embedding(cfg.token_vocab_size, E)
        self.positions = nn.Embedding(cfg.max_position, E) if cfg.position == "learned" else None
        self.segments = nn.Embedding(cfg.type_vocab_size, E)
        self.ln = nn.LayerNorm(E, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)
        self.project = nn.Linear(E, cfg.hidden_size) if E != cfg.hidden_size else nn.Identity()

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                pinyin_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T) → (B, T, H). ``pinyin_ids`` is accepted and unused, so every kind is
        called the same way."""
        x = add_positions(self.tokens(input_ids), self.positions)  # (B, T, E)
        x = x + (self.segments(token_type_ids) if token_type_ids is not None else self.segments.weight[0])
        return self.project(self.dropout(self.ln(x)))  # (B, T, H)


class WordEmbeddings(CharEmbeddings):
    """The word-level baseline: the same embedding over ``word_vocab_size`` ids (ModelConfig picks
    the table size); ids below ``vocab_size`` are the chars, so OOV words fall back to chars."""


class GlyphCNN(nn.Module):
    """A char's [fonts, S, S] bitmaps → E: a 4×4 stride-4 patch convolution (as a ViT patch
    embedding: 24 px → 6×6 patches), a 3×3 stride-2 convolution, then a linear map. Patch-sized
    strides keep it near 1 MFLOP per glyph (4 fonts, 32 channels, E = 256; 4× less than 3×3 convs
    at stride 2), so it adds little to a step even though it runs for every distinct char."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.glyph_channels
        side = ((cfg.glyph_size - 4) // 4) // 2 + 1  # side after both convolutions
        self.net = nn.Sequential(
            nn.Conv2d(cfg.num_fonts, c, kernel_size=4, stride=4), nn.GELU(),  # (N, c, S/4, S/4)
            nn.Conv2d(c, 2 * c, kernel_size=3, stride=2, padding=1), nn.GELU(),  # (N, 2c, S/8, S/8)
            nn.Flatten(),
            nn.Linear(2 * c * side * side, cfg.emb_dim),
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (N, fonts, S, S) in [0, 1] → (N, E)."""
        return self.net(pixels)


class GlyphLinear(nn.Module):
    """ChineseBERT's glyph map: the flattened bitmaps of all fonts, one linear layer to E."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.proj = nn.Linear(cfg.num_fonts * cfg.glyph_size ** 2, cfg.emb_dim)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.proj(pixels.flatten(1))  # (N, fonts·S·S) → (N, E)


GLYPH_NETS: dict[str, type[nn.Module]] = {"cnn": GlyphCNN, "linear": GlyphLinear}


class PinyinCNN(nn.Module):
    """ChineseBERT's pinyin map: letter embeddings, a width-2 convolution, max over the letters.

    The convolution is computed as what it is over a 35-letter alphabet: at each pair of neighbouring letters
    (a, b), ``W_left e_a + W_right e_b + bias``, so both products are taken once per letter of the alphabet and
    gathered, not once per letter of every syllable. The same numbers as ``nn.Conv1d`` (test_model), in about
    half the time of a step's pass over the pinyin vocab (docs/benchmarks.md "Fusion embedding")."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.letters = nn.Embedding(len(PINYIN_LETTERS), cfg.pinyin_channels)
        self.conv = nn.Conv1d(cfg.pinyin_channels, cfg.emb_dim, kernel_size=2)

    def forward(self, spelt: torch.Tensor) -> torch.Tensor:
        """spelt (N, L) letter ids → (N, E)."""
        w = self.conv.weight  # (E, C, 2)
        left, right = self.letters.weight @ w[:, :, 0].T, self.letters.weight @ w[:, :, 1].T  # (letters, E) each
        pairs = F.embedding(spelt[:, :-1], left) + F.embedding(spelt[:, 1:], right)  # (N, L-1, E)
        return (pairs + self.conv.bias).amax(dim=1)  # (N, E)


class FusionEmbeddings(nn.Module):
    """char ‖ glyph ‖ pinyin → Linear(3E → H), + position + segment → LayerNorm → dropout.

    ``glyphs``: uint8 [vocab_size, num_fonts, S, S] (``GlyphTable.pixels``), row i = char id i.
    ``pinyin_letters``: ``spell_pinyin(pinyin_vocab)``, [pinyin_vocab_size, pinyin_max_letters].
    Both are persistent buffers, so the export folder carries them; with ``glyph_trainable`` the
    glyph table becomes a float parameter instead (ChineseBERT), for comparison. ``cfg.fusion_inputs``
    drops glyph or pinyin for the ablations: the fused width is then 2E, and that part's table is not kept.
    """

    def __init__(self, cfg: ModelConfig, glyphs: torch.Tensor | np.ndarray | None = None,
                 pinyin_letters: torch.Tensor | None = None) -> None:
        super().__init__()
        E, H = cfg.emb_dim, cfg.hidden_size
        self.inputs = list(cfg.fusion_inputs)
        self.rows = cfg.fusion_rows
        if "glyph" in self.inputs:
            self._add_glyph_table(cfg, glyphs)
        if "pinyin" in self.inputs:
            want = (cfg.pinyin_vocab_size, cfg.pinyin_max_letters)
            if pinyin_letters is None or tuple(pinyin_letters.shape) != want:
                got = None if pinyin_letters is None else tuple(pinyin_letters.shape)
                raise ValueError(f"pinyin letter table has shape {got}, config wants {want}")
            self.register_buffer("pinyin_letters", pinyin_letters.long())
        self.tokens = nn.Embedding(cfg.vocab_size, E)
        if "glyph" in self.inputs:
            self.glyph_net = GLYPH_NETS[cfg.glyph_net](cfg)
        if "pinyin" in self.inputs:
            self.pinyin_net = PinyinCNN(cfg)
        self.fuse = nn.Linear((1 + len(self.inputs)) * E, H)
        self.positions = nn.Embedding(cfg.max_position, H) if cfg.position == "learned" else None
        self.segments = nn.Embedding(cfg.type_vocab_size, H)
        self.ln = nn.LayerNorm(H, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)
        # the nets' centred features, kept once ``freeze_nets`` has fixed them: (vocab, E) and (pinyin vocab, E)
        self.register_buffer("glyph_features", None, persistent=False)
        self.register_buffer("pinyin_features", None, persistent=False)

    def _add_glyph_table(self, cfg: ModelConfig, glyphs: torch.Tensor | np.ndarray | None) -> None:
        want = (cfg.vocab_size, cfg.num_fonts, cfg.glyph_size, cfg.glyph_size)
        if glyphs is None or tuple(glyphs.shape) != want:
            raise ValueError(f"glyph table has shape {None if glyphs is None else tuple(glyphs.shape)}, "
                             f"config wants {want}")
        glyphs = torch.as_tensor(glyphs)
        if glyphs.dtype == torch.uint8:
            glyphs = glyphs.float() / 255 if cfg.glyph_trainable else glyphs
        elif not cfg.glyph_trainable:
            raise ValueError(f"the fixed glyph table must be uint8, got {glyphs.dtype}")
        if cfg.glyph_trainable:
            self.glyphs = nn.Parameter(glyphs.float())
        else:
            self.register_buffer("glyphs", glyphs)
        # the centring reference (see the module docstring): the mean image of the rows with a character drawn
        # (specials and [unusedN] are blank); derived from the table, so not saved
        inked = glyphs[glyphs.flatten(1).amax(1) > 0].float() / (255 if glyphs.dtype == torch.uint8 else 1)
        reference = inked.mean(0, keepdim=True) if len(inked) else torch.zeros(1, *glyphs.shape[1:])
        self.register_buffer("glyph_reference", reference, persistent=False)  # (1, fonts, S, S)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                pinyin_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids, pinyin_ids (B, T) → (B, T, H)."""
        w_char, *w_parts = self.fuse.weight.chunk(1 + len(self.inputs), dim=1)  # each (H, E)
        w = dict(zip(self.inputs, w_parts))
        chars, char_of = self._rows(input_ids)  # (U,), (B, T)
        per_char = F.linear(self.tokens(chars), w_char, self.fuse.bias)  # (U, H)
        if "glyph" in w:
            per_char = per_char + F.linear(self._glyph_features(chars), w["glyph"])
        x = add_positions(per_char[char_of], self.positions)  # (B, T, H)
        if "pinyin" in w:
            if pinyin_ids is None:
                raise ValueError("the fusion embedding needs pinyin_ids (0 for non-hanzi tokens and padding)")
            x = x + F.linear(self._pinyin_features(), w["pinyin"])[pinyin_ids]  # (P, H) gathered → (B, T, H)
        x = x + (self.segments(token_type_ids) if token_type_ids is not None else self.segments.weight[0])
        return self.dropout(self.ln(x))

    def _rows(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The char ids whose fused rows are computed, (U,), and the row each token reads, (B, T): the distinct ids
        of the batch, or every id of the vocab (static shapes; see ``ModelConfig.fusion_rows``)."""
        rows = self.rows
        if rows == "auto":
            rows = "vocab" if input_ids.device.type != "cpu" or torch.compiler.is_compiling() else "distinct"
        if rows == "distinct":
            return torch.unique(input_ids, return_inverse=True)
        return torch.arange(self.tokens.num_embeddings, device=input_ids.device), input_ids

    def _glyph_features(self, chars: torch.Tensor) -> torch.Tensor:
        """The centred glyph features of ``chars`` (U,) → (U, E)."""
        if self.glyph_features is not None:
            return self.glyph_features[chars]
        return self._glyph_net(self.glyphs[chars]) - self._glyph_net(self.glyph_reference)

    def _pinyin_features(self) -> torch.Tensor:
        """The centred features of every syllable of the pinyin vocab, (P, E), centred over the real syllables."""
        if self.pinyin_features is not None:
            return self.pinyin_features
        features = self.pinyin_net(self.pinyin_letters)
        return features - features[SPECIAL_SYLLABLES:].mean(0, keepdim=True)

    @torch.no_grad()
    def freeze_nets(self, chunk: int = 4096) -> None:
        """Fix the glyph and pinyin nets (and a trainable glyph table) at their present weights and keep their
        features: each step then gathers rows of a table instead of running the glyph net over the batch's chars
        and back, which made a fusion fine-tuning step cost about twice a char one. The fusion Linear, the char
        table and everything after them still train; the outputs are the ones the nets give, so a model saved
        after fine-tuning loads and runs without the tables."""
        for name in ("glyph_net", "pinyin_net", "glyphs"):
            part = getattr(self, name, None)
            if isinstance(part, nn.Module | nn.Parameter):
                part.requires_grad_(False)
        if "glyph" in self.inputs:
            rows = torch.arange(len(self.glyphs), device=self.glyphs.device)
            self.glyph_features = torch.cat([self._glyph_features(r) for r in rows.split(chunk)])  # (V, E)
        if "pinyin" in self.inputs:
            self.pinyin_features = self._pinyin_features()  # (P, E)

    def _glyph_net(self, pixels: torch.Tensor) -> torch.Tensor:
        """Bitmaps (N, fonts, S, S), uint8 or float in [0, 1] → features (N, E), in the net's dtype (bf16 too)."""
        dtype = self.fuse.weight.dtype
        return self.glyph_net(pixels.to(dtype) / 255 if pixels.dtype == torch.uint8 else pixels.to(dtype))


EMBEDDINGS: dict[str, type[nn.Module]] = {
    "char": CharEmbeddings, "word": WordEmbeddings, "fusion": FusionEmbeddings,
}
