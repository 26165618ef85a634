"""Pretraining data: the shards of one view checked against the vocab and glyph table, a held-out split,
and the rows each rank reads at each step.

Everything is a function of the step: step s covers positions [s·B, (s+1)·B) of an endless stream made of
one seeded permutation of the training sequences per epoch, and rank r's micro-batch m takes its own slice
of that. Resuming at step s therefore needs nothing but s, and each rank reads only its own rows from the
memory-mapped shards.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zhbert.data.files import read_json, tokens_sha256
from zhbert.data.glyphs import GlyphTable, load_glyph_table
from zhbert.data.masking import token_chars
from zhbert.data.pinyin import PinyinVocab
from zhbert.data.shards import MANIFEST, load_shards, read_arrow
from zhbert.data.vocab import CharVocab
from zhbert.data.word_view import read_word_vocab
from zhbert.export import TextSettings
from zhbert.model.config import ModelConfig
from zhbert.train.config import PretrainConfig

VIEWS = {"char": "zhbert.char_view/1", "fusion": "zhbert.char_view/1", "word": "zhbert.word_view/1"}


@dataclass
class Vocabs:
    """The vocab files a run trains with; ``tokens`` is what the model's token ids mean (char or word vocab)."""

    char: CharVocab
    pinyin: PinyinVocab
    tokens: list[str]
    hashes: dict[str, str]

    @property
    def token_chars(self) -> np.ndarray:
        """Characters each token stands for (0 for specials and [unusedN]): what bits per character divides by."""
        return token_chars(self.tokens)


def load_vocabs(cfg: PretrainConfig) -> Vocabs:
    folder = Path(cfg.data.vocab)
    char, pinyin = CharVocab.load(folder), PinyinVocab.load(folder)
    hashes = {"char_sha256": char.sha256, "pinyin_sha256": pinyin.sha256}
    tokens = char.tokens
    if cfg.model.embedding == "word":
        tokens = read_word_vocab(folder)
        hashes["word_sha256"] = tokens_sha256(tokens)
    return Vocabs(char, pinyin, tokens, hashes)


def sized_model_config(cfg: PretrainConfig, vocabs: Vocabs) -> ModelConfig:
    """The model config with its table sizes taken from the vocab files, which decide what the rows mean."""
    return dataclasses.replace(cfg.model, vocab_size=len(vocabs.char), pinyin_vocab_size=len(vocabs.pinyin),
                               word_vocab_size=len(vocabs.tokens) if cfg.model.embedding == "word" else 0)


def check_shards(cfg: PretrainConfig, vocabs: Vocabs) -> dict[str, Any]:
    """The shard manifest, after checking that its view fits the model and its vocab hashes are ours."""
    folder = Path(cfg.data.shards)
    if not (folder / MANIFEST).exists():
        raise FileNotFoundError(f"{folder}: no {MANIFEST}; prepare shards with `zhbert prep` (word view: "
                                "`zhbert vocab word`)")
    manifest = read_json(folder / MANIFEST)
    want = VIEWS[cfg.model.embedding]
    if manifest.get("format") != want:
        raise ValueError(f"{folder} holds {manifest.get('format')} shards; a {cfg.model.embedding} model trains on "
                         f"{want} (data.shards)")
    for key, ours in vocabs.hashes.items():
        theirs = manifest["vocab"].get(key)
        if theirs is not None and theirs != ours:
            raise ValueError(f"{folder} was prepared with another vocab than {cfg.data.vocab}: {key} "
                             f"{theirs[:12]}… in the manifest vs {ours[:12]}…; re-run prep with this vocab")
    return manifest


def check_lengths(cfg: PretrainConfig, model_cfg: ModelConfig) -> int:
    """The longest row the model will be given (the shards' longest row, +1 for the [SEP] a sentence pair adds),
    checked against the model's positions; returns it."""
    import pyarrow.compute as pc

    folder = Path(cfg.data.shards)
    longest = max((pc.max(pc.list_value_length(read_arrow(folder / s["file"]).column("input_ids"))).as_py() or 0
                   for s in read_json(folder / MANIFEST)["shards"]), default=0)
    needed = longest + (cfg.masking.pairs != "none")
    if needed > model_cfg.max_position:
        pairs = f" + 1 [SEP] for masking.pairs = {cfg.masking.pairs!r}" if cfg.masking.pairs != "none" else ""
        raise ValueError(f"{folder}: rows of up to {longest} tokens{pairs} = {needed} positions, but "
                         f"model.max_position is {model_cfg.max_position}; raise model.max_position or prepare "
                         "shorter rows (prep's pack.max_len)")
    return needed


@dataclass
class Inputs:
    """What a run trains on, checked against each other: vocabs, shard manifest, sized model config, glyphs."""

    vocabs: Vocabs
    manifest: dict[str, Any]
    model: ModelConfig
    glyphs: GlyphTable | None
    text: TextSettings  # how the shards' text was normalised and segmented: the export carries it to fine-tuning


def check_inputs(cfg: PretrainConfig) -> Inputs:
    """Everything that can be wrong with a run's inputs, found before any process group or engine starts
    (`zhbert compare` calls it before it launches a run)."""
    vocabs = load_vocabs(cfg)
    manifest = check_shards(cfg, vocabs)
    model_cfg = sized_model_config(cfg, vocabs)
    check_lengths(cfg, model_cfg)
    uses = model_cfg.fusion_inputs if model_cfg.embedding == "fusion" else []
    glyphs = load_glyphs(cfg, vocabs) if "glyph" in uses else None
    return Inputs(vocabs, manifest, model_cfg, glyphs, TextSettings.of_shards(cfg.data.shards))


def load_glyphs(cfg: PretrainConfig, vocabs: Vocabs) -> GlyphTable:
    """The glyph table, checked against the char vocab it must be indexed by and the model's fonts and size."""
    folder = Path(cfg.data.glyphs)
    if not (folder / "glyphs.npy").exists():
        raise FileNotFoundError(f"{folder}: no glyphs.npy; render it with `zhbert glyphs --vocab {cfg.data.vocab}`")
    table = load_glyph_table(folder)
    if table.meta["vocab"]["sha256"] != vocabs.char.sha256:
        raise ValueError(f"{folder} was rendered for another vocab ({table.meta['vocab']['sha256'][:12]}…) than "
                         f"{cfg.data.vocab} ({vocabs.char.sha256[:12]}…); re-render it")
    _, fonts, size, _ = table.pixels.shape
    if (fonts, size) != (cfg.model.num_fonts, cfg.model.glyph_size):
        raise ValueError(f"{folder}: {fonts} fonts at {size}px, but model.num_fonts = {cfg.model.num_fonts} and "
                         f"model.glyph_size = {cfg.model.glyph_size}")
    return table


class PretrainData:
    """Training and held-out sequences of the shards, and the rows of (step, rank, micro-batch)."""

    def __init__(self, cfg: PretrainConfig, rank: int, world_size: int):
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        self.dataset = load_shards(cfg.data.shards)
        doc_ids = self.dataset.data.column("doc_id").to_pylist()
        bucket = np.array([zlib.crc32(d.encode()) % 10_000 for d in doc_ids])
        held = bucket < cfg.data.eval_percent * 100
        self.train_index = np.flatnonzero(~held)
        # the same held-out rows on every rank, as many as divide evenly into micro-batches over the ranks
        per_round = cfg.micro_batch * world_size
        n_eval = min(cfg.data.eval_sequences, int(held.sum())) // per_round * per_round
        self.eval_index = np.flatnonzero(held)[:n_eval]
        if not len(self.train_index):
            raise ValueError(f"{cfg.data.shards}: no training sequences left after holding out "
                             f"{cfg.data.eval_percent}% of documents")
        self._epoch, self._order = -1, self.train_index

    def _order_of(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = np.random.default_rng([self.cfg.seed, epoch]).permutation(self.train_index)
        return self._order

    def rows(self, step: int, micro: int) -> list[dict[str, Any]]:
        """This rank's rows for micro-batch ``micro`` of optimizer step ``step``."""
        mb = self.cfg.micro_batch
        start = step * self.cfg.batch_size + (micro * self.world_size + self.rank) * mb
        n = len(self.train_index)
        idx = [int(self._order_of(p // n)[p % n]) for p in range(start, start + mb)]
        return self._fetch(idx)

    def eval_batches(self) -> list[tuple[list[int], list[dict[str, Any]]]]:
        """This rank's share of the held-out rows, in micro-batches (every rank gets as many): (each row's place
        in the held-out set, the rows). The place keys the row's evaluation masks, whatever the ranks."""
        mb = self.cfg.micro_batch
        places = [list(range(i, min(i + mb, len(self.eval_index)))) for i in range(0, len(self.eval_index), mb)]
        return [(p, self._fetch(self.eval_index[p].tolist())) for p in places[self.rank:: self.world_size]]

    def unigram_log_probs(self, vocab_size: int) -> np.ndarray:
        """log p(token) of the training rows' token frequencies, add-one smoothed over the vocab (V,): the
        unigram reference, a model that predicts every masked token without looking at anything."""
        import pyarrow.compute as pc

        rows = self.dataset.data.column("input_ids").take(self.train_index)
        counts = np.bincount(pc.list_flatten(rows).to_numpy(), minlength=vocab_size).astype(np.float64) + 1
        return np.log(counts / counts.sum())

    @property
    def epoch_steps(self) -> float:
        return len(self.train_index) / self.cfg.batch_size

    def _fetch(self, idx: list[int]) -> list[dict[str, Any]]:
        cols = self.dataset[idx]
        return [dict(zip(cols, values)) for values in zip(*cols.values())]


def describe_row(row: dict[str, Any], masked: list[bool] | None, vocabs: Vocabs, limit: int = 40) -> str:
    """A training row as a person reads it: characters │ words │ pinyin │ masked for the char view, words │
    masked for the word view (whose tokens are words). ``masked``: the collator's choice for this row."""
    from zhbert.data.encode import describe

    if "pinyin_ids" in row:
        return describe((row["input_ids"], row["word_ids"], row["pinyin_ids"]), vocabs.char, vocabs.pinyin,
                        masked, limit)
    tokens = [vocabs.tokens[i] for i in row["input_ids"][:limit]]
    out = " ".join(tokens)
    return out if masked is None else out + " │ " + " ".join("_" if m else t for t, m in zip(tokens, masked))
