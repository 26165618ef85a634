"""The masking collator: shard rows → a padded, dynamically masked MLM batch (docs/architecture.md "Masking").

Masking is decided here, at batch time, so every epoch sees other masks. Per sequence a coin with
``whole_word_prob`` picks the *unit* of selection: a jieba word (all tokens sharing a word id) or a
single token. Units are then taken in random order while they fit in ``mask_prob`` of the sequence's
maskable tokens; a unit that would overshoot is skipped, as Google's BERT-wwm and Hugging Face's
whole-word collator do — one code path for both modes, so whole-word and char masking hide the same
share (only a row whose every unit is larger than its budget takes one unit and overshoots).

Each selected unit (``replace_per = "word"``) or token (``"token"``) becomes [MASK] (80 %), a random
character with its own pinyin (10 %) or stays as it is (10 %). A visible token of a word that has a hidden
one ([MASK] or random) shows its context-free pinyin, not the reading of its word: with 银 hidden, 行 reads
xing2, not hang2, so no visible pinyin tells what the hidden character was. Shards read by the context reader
(`ContextReader`: a character's reading may hang on its neighbours up to two tokens away) also show the
context-free reading for a visible character that reader reads (one of its polyphonic characters, or [UNK])
within two tokens of a hidden one: with 钱 hidden in 他还钱了, 还 shows its context-free reading. The batch for
step ``s`` depends only on the rows, ``seed``, ``s`` and an optional stream (e.g. rank and micro-batch), so a resumed
run re-creates the masks it would have drawn.

Held-out rows are masked by `MaskingCollator.held_out`, one fixed rule for every run whatever its training
masking (docs/architecture.md "Masking"): 15 % of a row's maskable *characters*, by whole words or by single tokens,
chosen by a hash of the row's place in the held-out set and the word's index in the row. The char view and
the word view of a row number their words alike, so a char model and a word model hide the same characters.

The word view goes through the same path: a word-vocab token is its own word, a word spelled in chars
has several tokens sharing a word id, and the random characters come from the word vocab's char part
(the char vocab, at the same ids). Its rows have no ``pinyin_ids``, and its batches no pinyin.

With ``pairs`` set, each row is first cut into two segments for a sentence-pair objective: after the
sentence end nearest the middle, if the middle half of the row has one, else at the word boundary
nearest the middle (never inside a word), giving ``[CLS] A [SEP] B [SEP]``. SOP (ALBERT) swaps A and B
half the time; NSP (BERT) replaces B half the time by the second part of a row of another document in
the batch. Masking then runs on the pairs as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from zhbert.config import ConfigError
from zhbert.data.confusion import homophones
from zhbert.data.pinyin import ContextReader, PinyinVocab, Readings
from zhbert.data.text import is_hanzi
from zhbert.data.vocab import CharVocab
from zhbert.model.model import IGNORE

EVAL_MASK_PROB = 0.15  # the held-out masking's share of maskable characters, the same for every run
EVAL_SEED = 20_240_229  # the held-out masking's stream, apart from every training seed
EvalUnit = Literal["word", "char"]
SENTENCE_ENDS = ("。", "！", "？", "!", "?", "…")  # a segment cut right after one of these is a whole sentence


@dataclass
class MaskingConfig:
    """How the collator masks; configs/masking/*.toml are deltas over these defaults."""

    mask_prob: float = 0.15
    """Share of a sequence's maskable tokens selected for prediction, never exceeded (a word that would is
    skipped); at least one unit per sequence that has any, since a batch without labels has no loss.
    Maskable: not padding and not a special — [UNK] counts as one, as its label would say nothing about the
    character it hides."""
    whole_word_prob: float = 1.0
    """Chance that a sequence is masked by whole words rather than by single tokens (1.0: always whole
    words, 0.0: always char masking); drawn per sequence, so one run can mix both."""
    mask_token_prob: float = 0.8
    """Share of selected units replaced by [MASK] (and pinyin [MASK])."""
    random_token_prob: float = 0.1
    """Share of selected units replaced by a random character and its pinyin; the rest stay unchanged,
    so the model cannot assume that a visible token is never a target."""
    similar_prob: float = 0.0
    """Correction masking (MacBERT's "MLM as correction"): the share of the tokens bound for [MASK] that get a
    similar character instead, one read alike (a homophone of the same tone, else of another tone, among the
    vocab's characters: zhbert/data/confusion.py), with its own pinyin; a token with none stays [MASK]. 0: plain
    80/10/10 (and the same masks as before this option existed)."""
    replace_per: Literal["word", "token"] = "word"
    """Draw the [MASK] / random / unchanged choice once per selected word (all its tokens alike, as in
    whole-word masking) or for each token separately."""
    seed: int = 0
    """Seed of the masking stream; the batch for step s uses (seed, s, *stream) only."""
    pairs: Literal["none", "sop", "nsp"] = "none"
    """Build sentence pairs for the model's ``pair_head``: none (one segment a row), sop (the row's two
    halves, swapped half the time: label 1) or nsp (the second half replaced, half the time, by a part of
    another document's row of the batch: label 1). Must match ``ModelConfig.pair_head``."""

    def __post_init__(self) -> None:
        for name in ("mask_prob", "whole_word_prob", "mask_token_prob", "random_token_prob", "similar_prob"):
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
    ``masked`` (bool, the selected positions), ``maskable`` (bool, the positions that could have been: the two
    give the realised mask rate) and, for char-view rows, ``pinyin_ids``.
    With ``pairs`` set, also ``token_type_ids`` (B, T) — 0 on [CLS] A [SEP] and padding, 1 on B [SEP] —
    and ``pair_labels`` (B,); NSP reads each row's ``doc_id`` (no other document, no label-1 pair).
    Packed rows with a ``document`` column (1, 2, … per joined row) also give ``document_ids`` (B, T).
    """

    def __init__(self, cfg: MaskingConfig, vocab: CharVocab, pinyin: PinyinVocab,
                 tokens_of_view: list[str] | None = None, context: ContextReader | None = None) -> None:
        """``tokens_of_view``: what the rows' ids mean when it is not the char vocab (the word vocab of the word
        view); the held-out masking counts characters with it. ``context``: the reader that read the shards' pinyin
        in context, if one did (``TextSettings.context_reader``)."""
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
        self.near_reads = np.zeros(len(tokens), bool)  # char id → its shard reading may hang on its neighbours
        if context is not None:
            polyphonic = {chr(c) for c in context.chars.tolist()}
            self.near_reads[[i for i, t in enumerate(tokens) if t in polyphonic] + [vocab.unk_id]] = True
        self.sentence_ends = np.array([vocab.tokenizer.token_to_id(t) for t in SENTENCE_ENDS
                                       if vocab.tokenizer.token_to_id(t) is not None], np.int64)
        self.token_chars = token_chars(tokens) if tokens_of_view is None else token_chars(tokens_of_view)
        self.similar = _similar_table(tokens, len(tokens_of_view or tokens)) if cfg.similar_prob > 0 else None

    def __call__(self, rows: Sequence[dict[str, Any]], step: int, *stream: int) -> dict[str, torch.Tensor]:
        """``stream``: more non-negative ints that pick an independent mask stream for the same step, e.g.
        (rank, micro-batch) under data parallelism, so no two ranks draw the same masks."""
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, step, *stream])
        if cfg.pairs != "none":
            rows, pair_labels = self._make_pairs(rows, rng)
        ids = self._pad(rows, "input_ids", self.vocab.pad_id)  # (B, T)
        word_ids = self._pad(rows, "word_ids", -1)  # (B, T)
        B, T = ids.shape
        maskable = self._maskable(ids, word_ids)  # (B, T)

        # units: word ids (whole-word rows) or positions (char rows); -1 where nothing may be masked
        whole_word = rng.random(B) < cfg.whole_word_prob  # (B,)
        position = np.broadcast_to(np.arange(T), (B, T))
        unit = np.where(maskable, np.where(whole_word[:, None], word_ids, position), -1)  # (B, T), ids < T
        target = np.maximum(1, np.rint(cfg.mask_prob * maskable.sum(1)))  # (B,) tokens
        masked = self._select(unit, maskable.astype(np.int64), target, rng.random((B, T)))  # (B, T)

        # 80/10/10, drawn once per unit (or per token) and read at each token
        choice = rng.random((B, T))
        choice = np.take_along_axis(choice, np.maximum(unit, 0), 1) if cfg.replace_per == "word" else choice
        to_mask = masked & (choice < cfg.mask_token_prob)
        to_random = masked & ~to_mask & (choice < cfg.mask_token_prob + cfg.random_token_prob)
        random_ids = self.random_ids[rng.integers(len(self.random_ids), size=(B, T))]  # (B, T)

        out_ids = np.where(to_random, random_ids, np.where(to_mask, self.vocab.mask_id, ids))
        if self.similar is not None:  # drawn last, so that similar_prob = 0 leaves every other draw as it was
            start, count, flat = self.similar
            to_similar = to_mask & (count[ids] > 0) & (rng.random((B, T)) < cfg.similar_prob)
            similar = flat[start[ids] + (rng.random((B, T)) * count[ids]).astype(np.int64)]
            out_ids = np.where(to_similar, similar, out_ids)
            to_random, random_ids = to_random | to_similar, np.where(to_similar, similar, random_ids)
        batch = self._batch(rows, ids, out_ids, word_ids, masked, to_mask | to_random)
        batch["maskable"] = torch.from_numpy(maskable)
        if "pinyin_ids" in batch:
            pinyin = batch["pinyin_ids"].numpy()
            batch["pinyin_ids"] = torch.from_numpy(np.where(to_random, self.pinyin_of[random_ids], pinyin))
        if cfg.pairs != "none":
            batch["token_type_ids"] = torch.from_numpy(self._pad(rows, "token_type_ids", 0))
            batch["pair_labels"] = torch.from_numpy(pair_labels)
        return batch

    def held_out(self, rows: Sequence[dict[str, Any]], keys: Sequence[int], unit: EvalUnit) -> dict[str, torch.Tensor]:
        """The evaluation batch of held-out ``rows``: every run masks them alike, whatever its training masking.

        ``keys``: each row's place in the held-out set. Units (whole words, or single tokens with
        ``unit = "char"``) are taken in an order drawn from (EVAL_SEED, key) while they fit in EVAL_MASK_PROB of
        the row's maskable characters, and every token of a taken unit becomes [MASK] (pinyin [MASK]): the figure
        measures recovering hidden characters, with no random or unchanged targets. Sizes and budgets are in
        characters and words are numbered alike in both views, so the char view and the word view of a row hide
        the same characters (a word-vocab token is one unit of several characters). No sentence pairs: held-out
        figures are about the MLM alone."""
        ids = self._pad(rows, "input_ids", self.vocab.pad_id)  # (B, T)
        word_ids = self._pad(rows, "word_ids", -1)  # (B, T)
        B, T = ids.shape
        maskable = self._maskable(ids, word_ids)
        chars = np.where(maskable, self.token_chars[ids], 0)  # (B, T) characters each token stands for
        unit_of = word_ids if unit == "word" else np.broadcast_to(np.arange(T), (B, T))
        units = np.where(maskable, unit_of, -1)
        order = np.full((B, T), np.inf)
        for i, key in enumerate(keys):  # a row's draw depends on its key and its units only, not on the batch
            n = int(word_ids[i].max(initial=-1)) + 1 if unit == "word" else len(rows[i]["input_ids"])
            order[i, :n] = np.random.default_rng([EVAL_SEED, key, unit == "word"]).random(n)
        target = np.maximum(1, np.rint(EVAL_MASK_PROB * chars.sum(1)))  # (B,) characters
        masked = self._select(units, chars, target, order)
        out_ids = np.where(masked, self.vocab.mask_id, ids)
        return self._batch(rows, ids, out_ids, word_ids, masked, masked)

    def _maskable(self, ids: np.ndarray, word_ids: np.ndarray) -> np.ndarray:
        """Tokens that may be masked: not padding, not a special, not [UNK] (its label says nothing)."""
        return (word_ids >= 0) & ~np.isin(ids, self.specials)

    def _batch(self, rows: Sequence[dict[str, Any]], ids: np.ndarray, out_ids: np.ndarray, word_ids: np.ndarray,
               masked: np.ndarray, hidden: np.ndarray) -> dict[str, torch.Tensor]:
        """The tensors of a masked batch; ``hidden``: tokens whose character the input no longer shows. Pinyin:
        [MASK] where the input is [MASK], and the context-free reading for a visible token of a word with a hidden
        token, or read in context near one (see the module docstring); random replacements are the caller's."""
        B, T = ids.shape
        lengths = np.array([len(r["input_ids"]) for r in rows])
        batch = {
            "input_ids": torch.from_numpy(out_ids),
            "attention_mask": torch.from_numpy((np.arange(T) < lengths[:, None]).astype(np.int64)),
            "labels": torch.from_numpy(np.where(masked, ids, IGNORE)),
            "masked": torch.from_numpy(masked),
        }
        if "document" in rows[0]:  # packed rows that attend only within themselves (DataConfig.pack_attention)
            batch["document_ids"] = torch.from_numpy(self._pad(rows, "document", 0))
        if "pinyin_ids" in rows[0]:
            pinyin = self._pad(rows, "pinyin_ids", PinyinVocab.PAD)
            row = np.broadcast_to(np.arange(B)[:, None], (B, T))
            word_hidden = np.zeros((B, T + 1), bool)  # (row, word id) → the word has a hidden token
            word_hidden[row[hidden], word_ids[hidden]] = True
            near = np.zeros_like(hidden)  # within two tokens of a hidden one: the context reader's reach
            for d in (1, 2):
                near[:, d:] |= hidden[:, :-d]
                near[:, :-d] |= hidden[:, d:]
            exposed = ~hidden & (word_ids >= 0) & (word_hidden[row, np.maximum(word_ids, 0)]
                                                   | (near & self.near_reads[ids]))
            free = np.where(self.pinyin_of[ids] > 0, self.pinyin_of[ids], PinyinVocab.UNK)  # [UNK] hanzi: no reading
            pinyin = np.where(exposed & (pinyin != PinyinVocab.PAD), free, pinyin)
            shows_mask = masked & (out_ids == self.vocab.mask_id)
            batch["pinyin_ids"] = torch.from_numpy(np.where(shows_mask, PinyinVocab.MASK, pinyin))
        return batch

    def _make_pairs(self, rows: Sequence[dict[str, Any]],
                    rng: np.random.Generator) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
        """Rows → ``[CLS] A [SEP] B [SEP]`` rows with ``token_type_ids``, and the pair labels (B,).
        A row of fewer than two words stays one segment with label 0."""
        keys = [k for k in ("input_ids", "word_ids", "pinyin_ids") if k in rows[0]]
        bodies = [{k: np.asarray(r[k][1:-1], np.int64) for k in keys} for r in rows]  # without [CLS], [SEP]
        cuts = [self._cut(b["input_ids"], b["word_ids"]) for b in bodies]
        # drawn for all rows at once, so the draws (and the masks after them) don't hinge on which rows split
        coin, partner_draw = rng.random(len(rows)) < 0.5, rng.random(len(rows))
        labels = np.zeros(len(rows), np.int64)
        out = []
        for i, (body, cut) in enumerate(zip(bodies, cuts)):
            if cut is None:
                out.append(self._join(body, None))
                continue
            first, second = _part(body, 0, cut), _part(body, cut, None)
            if self.cfg.pairs == "sop":
                labels[i] = coin[i]
                out.append(self._join(second, first) if coin[i] else self._join(first, second))
                continue
            others = [j for j, r in enumerate(rows) if cuts[j] is not None and "doc_id" in r
                      and r["doc_id"] != rows[i]["doc_id"]]
            if coin[i] and others:  # not next: another document's second part, no longer than ours
                j = others[int(partner_draw[i] * len(others))]
                second = _part(bodies[j], cuts[j], cuts[j] + len(second["input_ids"]))
                labels[i] = 1
            out.append(self._join(first, second))
        return out, labels

    def _cut(self, ids: np.ndarray, word_ids: np.ndarray) -> int | None:
        """Where to split a row's tokens (without [CLS] / [SEP]): the word boundary nearest the middle,
        preferring one right after a sentence end within the middle half; None below two words."""
        boundaries = np.flatnonzero(word_ids[1:] != word_ids[:-1]) + 1  # a new word starts here
        if not len(boundaries):
            return None
        middle = len(ids) / 2
        ends = boundaries[np.isin(ids[boundaries - 1], self.sentence_ends)]
        ends = ends[np.abs(ends - middle) <= middle / 2]
        candidates = ends if len(ends) else boundaries
        return int(candidates[np.argmin(np.abs(candidates - middle))])

    def _join(self, a: dict[str, np.ndarray], b: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        """``[CLS] a [SEP] b [SEP]`` (or ``[CLS] a [SEP]``); word ids renumbered from 0, B's after A's, so
        whole-word masking never joins a word of A to one of B. The new specials have word id -1, pinyin 0."""
        v = self.vocab
        sep = {"input_ids": v.sep_id, "word_ids": -1, "pinyin_ids": PinyinVocab.PAD}
        row = {k: [[v.cls_id if k == "input_ids" else sep[k]]] for k in a} | {"token_type_ids": [[0]]}
        n_words = 0
        for segment_id, seg in enumerate([a] if b is None else [a, b]):
            w = seg["word_ids"]
            renumbered = np.full_like(w, -1)
            renumbered[w >= 0] = n_words + np.unique(w[w >= 0], return_inverse=True)[1]
            n_words = renumbered.max(initial=n_words - 1) + 1
            for k, col in (seg | {"word_ids": renumbered}).items():
                row[k] += [col, [sep[k]]]
            row["token_type_ids"].append(np.full(len(w) + 1, segment_id))
        return {k: np.concatenate(parts).astype(np.int64) for k, parts in row.items()}

    @staticmethod
    def _select(unit: np.ndarray, weight: np.ndarray, target: np.ndarray, draw: np.ndarray) -> np.ndarray:
        """Per row, units in the order of ``draw`` (B, T; smaller first, indexed by unit id) taken while they fit:
        a unit whose ``weight`` would lift the row's total above ``target`` (B,) is skipped. A row where no unit
        fits takes its first unit, so every row with a maskable token has a label. ``unit`` (B, T) is the unit id
        of each token (-1: none), ``weight`` (B, T) what each token counts. → (B, T) bool, the selected tokens."""
        B, T = unit.shape
        row = np.broadcast_to(np.arange(B)[:, None], (B, T))
        size = np.zeros((B, T), np.int64)  # weight per unit id
        np.add.at(size, (row[unit >= 0], unit[unit >= 0]), weight[unit >= 0])
        present = np.zeros((B, T), bool)
        present[row[unit >= 0], unit[unit >= 0]] = True
        order = np.argsort(np.where(present, draw, np.inf), axis=1, kind="stable")  # absent units last
        size_in_order = np.take_along_axis(size, order, 1)
        present_in_order = np.take_along_axis(present, order, 1)
        # the smallest unit still to come in each row: once none fits in any row, the rest is skipped unread
        smallest_after = np.minimum.accumulate(np.where(present_in_order, size_in_order, np.inf)[:, ::-1], 1)[:, ::-1]
        take = np.zeros((B, T), bool)
        covered = np.zeros(B, np.int64)
        for k in range(int(present.sum(1).max(initial=0))):  # greedy, one unit of every row at a time
            if (covered + smallest_after[:, k] > target).all():
                break
            fits = present_in_order[:, k] & (covered + size_in_order[:, k] <= target)
            take[:, k] = fits
            covered += np.where(fits, size_in_order[:, k], 0)
        take[:, 0] |= (covered == 0) & present_in_order[:, 0]
        selected = np.zeros((B, T), bool)
        np.put_along_axis(selected, order, take, 1)
        return (unit >= 0) & np.take_along_axis(selected, np.maximum(unit, 0), 1)

    @staticmethod
    def _pad(rows: Sequence[dict[str, Any]], key: str, value: int) -> np.ndarray:
        """Column ``key`` of ``rows`` (lists or arrays) as (B, T), T the longest, ``value`` after each row's end."""
        columns = [np.asarray(r[key]) for r in rows]
        lengths = np.array([len(c) for c in columns])
        out = np.full((len(rows), lengths.max()), value, np.int64)
        out[np.arange(out.shape[1]) < lengths[:, None]] = np.concatenate(columns)  # row-major: row by row
        return out


def _similar_table(tokens: Sequence[str], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For correction masking: each token id's similar characters as (start, count, flat ids), so that token i's
    are ``flat[start[i]:start[i] + count[i]]``: its homophones of the same tone among the char vocab's single
    characters, else those of another tone; none for specials, non-hanzi and the word vocab's words (``size``:
    the ids the rows hold)."""
    ids = {t: i for i, t in enumerate(tokens) if len(t) == 1}
    near = homophones(ids)
    start, count, flat = np.zeros(size, np.int64), np.zeros(size, np.int64), []
    for c, (same, other) in near.items():
        chosen = sorted(ids[h] for h in (same or other))
        start[ids[c]], count[ids[c]] = len(flat), len(chosen)
        flat += chosen
    return start, count, np.array(flat or [0], np.int64)


def token_chars(tokens: Sequence[str]) -> np.ndarray:
    """Characters each token stands for: 0 for specials and [unusedN], a ``##`` piece without its marks, a word
    of the word vocab all its characters. What bits per character divide by, and what held-out budgets count."""
    return np.array([0 if t.startswith("[") and t.endswith("]") else len(t.removeprefix("##")) for t in tokens],
                    np.int64)


def _part(body: dict[str, np.ndarray], start: int, stop: int | None) -> dict[str, np.ndarray]:
    """Tokens ``start:stop`` of every column of a row."""
    return {k: col[start:stop] for k, col in body.items()}
