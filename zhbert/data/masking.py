"""The masking collator: shard rows → a padded, dynamically masked MLM batch (DESIGN.md "Masking").

Masking is decided here, at batch time, so every epoch sees other masks. Per sequence a coin with
``whole_word_prob`` picks the *unit* of selection: a jieba word (all tokens sharing a word id) or a
single token. Units are then taken in random order until ``mask_prob`` of the sequence's maskable
tokens are covered — one code path for both modes. Whole words are atomic, so whole-word masking
overshoots the rate by part of the last word; char masking hits it exactly (up to rounding).

Each selected unit (``replace_per = "word"``) or token (``"token"``) becomes [MASK] (80 %), a random
character with its own pinyin (10 %) or stays as it is (10 %). The batch for step ``s`` depends only on
the rows, ``seed`` and ``s``, so a resumed run re-creates the masks it would have drawn.

The word view goes through the same path: a word-vocab token is its own word, a word spelled in chars
has several tokens sharing a word id, and the random characters come from the word vocab's char part
(the char vocab, at the same ids). Its rows have no ``pinyin_ids``, and its batches no pinyin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from zhbert.config import ConfigError
from zhbert.data.pinyin import PinyinVocab, Readings
from zhbert.data.text import is_hanzi
from zhbert.data.vocab import CharVocab

IGNORE = -100  # label of positions the loss skips (torch's cross-entropy default)


@dataclass
class MaskingConfig:
    """How the collator masks; configs/masking/*.toml are deltas over these defaults."""

    mask_prob: float = 0.15
    """Share of a sequence's maskable tokens selected for prediction; at least one per sequence that has
    any, since a batch without labels has no loss. Maskable: not padding and not a special — [UNK]
    counts as one, as its label would say nothing about the character it hides."""
    whole_word_prob: float = 1.0
    """Chance that a sequence is masked by whole words rather than by single tokens (1.0: always whole
    words, 0.0: always char masking); drawn per sequence, so one run can mix both."""
    mask_token_prob: float = 0.8
    """Share of selected units replaced by [MASK] (and pinyin [MASK])."""
    random_token_prob: float = 0.1
    """Share of selected units replaced by a random character and its pinyin; the rest stay unchanged,
    so the model cannot assume that a visible token is never a target."""
    replace_per: Literal["word", "token"] = "word"
    """Draw the [MASK] / random / unchanged choice once per selected word (all its tokens alike, as in
    whole-word masking) or for each token separately."""
    seed: int = 0
    """Seed of the masking stream; the batch for step s uses (seed, s) only."""

    def __post_init__(self) -> None:
        for name in ("mask_prob", "whole_word_prob", "mask_token_prob", "random_token_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.mask_prob == 0.0:
            raise ConfigError("mask_prob must be above 0: a batch without masked tokens has no MLM loss")
        if self.mask_token_prob + self.random_token_prob > 1.0:
            raise ConfigError(f"mask_token_prob + random_token_prob = "
                              f"{self.mask_token_prob + self.random_token_prob} exceeds 1")


class MaskingCollator:
    """``collator(rows, step)`` → dict of tensors, each (B, T) with T the longest row of the batch:
    ``input_ids``, ``attention_mask``, ``labels`` (original id where selected, -100 elsewhere),
    ``masked`` (bool, the selected positions, for logging) and, for char-view rows, ``pinyin_ids``.
    """

    def __init__(self, cfg: MaskingConfig, vocab: CharVocab, pinyin: PinyinVocab) -> None:
        self.cfg, self.vocab = cfg, vocab
        self.specials = np.array([vocab.pad_id, vocab.cls_id, vocab.sep_id, vocab.mask_id, vocab.unk_id])
        tokens = vocab.tokens
        # random replacements: single characters, never specials, [unusedN] or ## pieces (all longer than 1)
        self.random_ids = np.array([i for i, t in enumerate(tokens) if len(t) == 1])
        readings = Readings()
        self.pinyin_of = np.zeros(len(tokens), np.int64)  # char id → pinyin id, 0 for non-hanzi (and specials)
        for i in self.random_ids:
            if is_hanzi(tokens[i]):
                self.pinyin_of[i] = pinyin.ids.get(readings(tokens[i])[0], PinyinVocab.UNK)

    def __call__(self, rows: Sequence[dict[str, Any]], step: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, step])
        ids = self._pad(rows, "input_ids", self.vocab.pad_id)  # (B, T)
        word_ids = self._pad(rows, "word_ids", -1)  # (B, T)
        B, T = ids.shape
        maskable = (word_ids >= 0) & ~np.isin(ids, self.specials)  # (B, T)

        # units: word ids (whole-word rows) or positions (char rows); -1 where nothing may be masked
        whole_word = rng.random(B) < cfg.whole_word_prob  # (B,)
        position = np.broadcast_to(np.arange(T), (B, T))
        unit = np.where(maskable, np.where(whole_word[:, None], word_ids, position), -1)  # (B, T), ids < T
        selected_unit = self._select_units(unit, maskable.sum(1), rng)  # (B, T) over unit ids
        masked = maskable & np.take_along_axis(selected_unit, np.maximum(unit, 0), 1)  # (B, T)

        # 80/10/10, drawn once per unit (or per token) and read at each token
        choice = rng.random((B, T))
        choice = np.take_along_axis(choice, np.maximum(unit, 0), 1) if cfg.replace_per == "word" else choice
        to_mask = masked & (choice < cfg.mask_token_prob)
        to_random = masked & ~to_mask & (choice < cfg.mask_token_prob + cfg.random_token_prob)
        random_ids = self.random_ids[rng.integers(len(self.random_ids), size=(B, T))]  # (B, T)

        out_ids = np.where(to_random, random_ids, np.where(to_mask, self.vocab.mask_id, ids))
        lengths = np.array([len(r["input_ids"]) for r in rows])
        batch = {
            "input_ids": torch.from_numpy(out_ids),
            "attention_mask": torch.from_numpy((np.arange(T) < lengths[:, None]).astype(np.int64)),
            "labels": torch.from_numpy(np.where(masked, ids, IGNORE)),
            "masked": torch.from_numpy(masked),
        }
        if "pinyin_ids" in rows[0]:
            pinyin = self._pad(rows, "pinyin_ids", PinyinVocab.PAD)
            pinyin = np.where(to_random, self.pinyin_of[random_ids], np.where(to_mask, PinyinVocab.MASK, pinyin))
            batch["pinyin_ids"] = torch.from_numpy(pinyin)
        return batch

    def _select_units(self, unit: np.ndarray, n_maskable: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Per row, units in random order until ``mask_prob`` of the maskable tokens are covered → (B, T) bool."""
        B, T = unit.shape
        size = np.zeros((B, T), np.int64)  # tokens per unit id
        rows = np.broadcast_to(np.arange(B)[:, None], (B, T))
        np.add.at(size, (rows[unit >= 0], unit[unit >= 0]), 1)
        target = np.maximum(1, np.rint(self.cfg.mask_prob * n_maskable))[:, None]  # (B, 1)
        order = np.argsort(np.where(size > 0, rng.random((B, T)), np.inf), axis=1)  # absent units last
        size_in_order = np.take_along_axis(size, order, 1)
        covered_before = np.cumsum(size_in_order, 1) - size_in_order  # tokens covered before each unit is taken
        take = (covered_before < target) & (size_in_order > 0)
        selected = np.zeros((B, T), bool)
        np.put_along_axis(selected, order, take, 1)
        return selected

    @staticmethod
    def _pad(rows: Sequence[dict[str, Any]], key: str, value: int) -> np.ndarray:
        T = max(len(r[key]) for r in rows)
        out = np.full((len(rows), T), value, np.int64)
        for i, r in enumerate(rows):
            out[i, : len(r[key])] = r[key]
        return out
