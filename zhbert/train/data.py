"""Pretraining data: the shards of one view checked against the vocab and glyph table, a held-out split,
and the rows each rank reads at each step.

Everything is a function of the step: step s covers positions [s·B, (s+1)·B) of an endless stream made of
one seeded permutation of the training sequences per epoch, and rank r's micro-batch m takes its own slice
of that. Resuming at step s therefore needs nothing but s, and each rank reads only its own rows from the
memory-mapped shards.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zhbert.data.glyphs import GlyphTable, load_glyph_table
from zhbert.data.pinyin import PinyinVocab
from zhbert.data.shards import load_shards, read_arrow
from zhbert.data.vocab import CharVocab
from zhbert.data.word_view import read_word_vocab
from zhbert.export import TextSettings
from zhbert.files import read_json, tokens_sha256
from zhbert.layout import GLYPHS, MANIFEST, WORD_VOCAB
from zhbert.model.config import ModelConfig
from zhbert.train.config import PretrainConfig
from zhbert.train.masking import token_chars

TOKEN_COLUMNS = ("input_ids", "word_ids", "pinyin_ids")  # the columns with one entry per token of a row
EVAL_PACK_SEED = 20_240_301  # how held-out rows are packed: the same for every run


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
    if cfg.model.inputs.tokens == WORD_VOCAB:
        tokens = read_word_vocab(folder)
        hashes["word_sha256"] = tokens_sha256(tokens)
    return Vocabs(char, pinyin, tokens, hashes)


def sized_model_config(cfg: PretrainConfig, vocabs: Vocabs) -> ModelConfig:
    """The model config with its table sizes taken from the vocab files, which decide what the rows mean."""
    return cfg.model.sized(len(vocabs.char), len(vocabs.tokens), len(vocabs.pinyin))


def check_shards(cfg: PretrainConfig, vocabs: Vocabs) -> dict[str, Any]:
    """The shard manifest, after checking that its view fits the model and its vocab hashes are ours."""
    folder = Path(cfg.data.shards)
    if not (folder / MANIFEST).exists():
        raise FileNotFoundError(f"{folder}: no {MANIFEST}; prepare shards with `zhbert prep` (word view: "
                                "`zhbert vocab word`)")
    manifest = read_json(folder / MANIFEST)
    want = cfg.model.inputs.view
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
    checked against the model's positions (and the packed length); returns it."""
    import pyarrow.compute as pc

    folder = Path(cfg.data.shards)
    longest = max((pc.max(pc.list_value_length(read_arrow(folder / s["file"]).column("input_ids"))).as_py() or 0
                   for s in read_json(folder / MANIFEST)["shards"]), default=0)
    needed = longest + (cfg.masking.pairs != "none")
    if cfg.data.pack and cfg.data.pack_len and longest > cfg.data.pack_len:
        raise ValueError(f"{folder}: rows of up to {longest} tokens do not fit in data.pack_len = "
                         f"{cfg.data.pack_len}; raise it (up to model.max_position) or prepare shorter rows")
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
    glyphs = load_glyphs(cfg, vocabs) if model_cfg.inputs.glyphs else None
    return Inputs(vocabs, manifest, model_cfg, glyphs, TextSettings.of_shards(cfg.data.shards))


def load_glyphs(cfg: PretrainConfig, vocabs: Vocabs) -> GlyphTable:
    """The glyph table, checked against the char vocab it must be indexed by and the model's fonts and size."""
    folder = Path(cfg.data.glyphs)
    if not (folder / GLYPHS).exists():
        raise FileNotFoundError(f"{folder}: no {GLYPHS}; render it with `zhbert glyphs --vocab {cfg.data.vocab}`")
    table = load_glyph_table(folder)
    if table.meta["vocab"]["sha256"] != vocabs.char.sha256:
        raise ValueError(f"{folder} was rendered for another vocab ({table.meta['vocab']['sha256'][:12]}…) than "
                         f"{cfg.data.vocab} ({vocabs.char.sha256[:12]}…); re-render it")
    _, fonts, size, _ = table.pixels.shape
    if (fonts, size) != (cfg.model.num_fonts, cfg.model.glyph_size):
        raise ValueError(f"{folder}: {fonts} fonts at {size}px, but model.num_fonts = {cfg.model.num_fonts} and "
                         f"model.glyph_size = {cfg.model.glyph_size}")
    return table


def pack_rows(lengths: np.ndarray, pack_len: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Group rows of ``lengths`` tokens ([CLS] … [SEP] each) into sequences of at most ``pack_len`` tokens: a group
    costs 1 + Σ (length − 1), every row after the first losing its [CLS]. Best fit decreasing (each row, longest
    first, goes to the open group it leaves least room in; ties in a seeded order), which fills ≥ 95 % of the
    positions when short rows are plentiful. Returns (row indices grouped, offsets): group g is
    ``rows[offsets[g]:offsets[g + 1]]``, its rows in a seeded order."""
    cost, capacity = lengths.astype(np.int64) - 1, pack_len - 1
    if len(cost) and cost.max() > capacity:
        raise ValueError(f"rows of up to {cost.max() + 1} tokens do not fit in packed sequences of {pack_len}")
    order = rng.permutation(len(cost))
    order = order[np.argsort(-cost[order], kind="stable")]
    group_of = np.empty(len(cost), np.int64)
    room_bits = 0  # bit r set: some open group has exactly r free positions
    open_with: list[list[int]] = [[] for _ in range(capacity + 1)]
    groups = 0
    for i, c in zip(order.tolist(), cost[order].tolist()):
        fitting = room_bits >> c
        if fitting:  # the tightest open group that takes the row
            room = c + (fitting & -fitting).bit_length() - 1
            g = open_with[room].pop()
            if not open_with[room]:
                room_bits &= ~(1 << room)
        else:
            room, g, groups = capacity, groups, groups + 1
        group_of[i] = g
        if room > c:
            open_with[room - c].append(g)
            room_bits |= 1 << (room - c)
    shuffled = rng.permutation(len(cost))
    rows = shuffled[np.argsort(group_of[shuffled], kind="stable")]
    offsets = np.zeros(groups + 1, np.int64)
    np.cumsum(np.bincount(group_of, minlength=groups), out=offsets[1:])
    return rows, offsets


def ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(a, a + n) for a, n in zip(starts, counts)])`` without a Python loop."""
    ends = np.cumsum(counts)
    return np.repeat(starts - ends + counts, counts) + np.arange(ends[-1] if len(ends) else 0)


def join_packs(columns: dict[str, np.ndarray], lengths: np.ndarray, rows_per_pack: np.ndarray,
               documents: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Shard rows → packed rows ``[CLS] a [SEP] b [SEP] …``, all packs of a batch at once (no Python per row):
    every row after the first of its pack loses its [CLS], word ids run on across the rows of a pack (whole-word
    masking never joins words of two rows). ``columns``: the rows' token columns end to end, row i holding
    ``lengths[i]`` tokens; ``rows_per_pack``: how many consecutive rows each pack takes. ``documents``: also a
    ``document`` column, 1, 2, … for the tokens of each row of a pack (the block-diagonal attention mask reads
    it). Returns (the packs' columns end to end, each pack's length)."""
    first_row = np.cumsum(rows_per_pack) - rows_per_pack  # (P,) each pack's first row
    pack_of_row = np.repeat(np.arange(len(rows_per_pack)), rows_per_pack)  # (R,)
    row_of_token = np.repeat(np.arange(len(lengths)), lengths)  # (N,)
    is_first = np.zeros(len(lengths), bool)
    is_first[first_row] = True
    keep = (ranges(np.zeros_like(lengths), lengths) > 0) | is_first[row_of_token]  # every later row's [CLS] goes
    w = np.where(keep, columns["word_ids"], -1)
    words = np.maximum.reduceat(w, np.cumsum(lengths) - lengths) + 1  # (R,) words of each row
    before = np.cumsum(words) - words
    run_on = before - before[first_row][pack_of_row]  # (R,) words of the earlier rows of the same pack
    out = {k: v for k, v in columns.items() if k != "word_ids"}
    out["word_ids"] = np.where(w >= 0, w + run_on[row_of_token], -1)
    if documents:
        out["document"] = (np.arange(len(lengths)) - first_row[pack_of_row] + 1)[row_of_token]
    packed = {k: out[k][keep] for k in (*columns, *["document"] * documents)}
    return packed, np.bincount(pack_of_row[row_of_token[keep]], minlength=len(rows_per_pack))


class ShardColumns:
    """The token columns of the shards as numpy views of the memory-mapped Arrow chunks, and where each row starts
    in its chunk. Gathering rows is then one slice per row: no Arrow → Python lists (``dataset[idx]``), and no
    ``Table.take``, which concatenates every chunk of a list column first. The views share the memory map, so
    forked data workers read the same pages; every token column has one entry per token of its row."""

    def __init__(self, table: Any, names: list[str]) -> None:
        sizes = [len(c) for c in table.column(names[0]).chunks]
        self.chunk_of = np.repeat(np.arange(len(sizes)), sizes)  # (rows,)
        self.values = {k: [c.values.to_numpy() for c in table.column(k).chunks] for k in names}
        self.start = {k: np.concatenate([c.offsets.to_numpy()[:-1] for c in table.column(k).chunks])
                      for k in names}

    def gather(self, rows: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        """The token columns of ``rows`` (with ``lengths`` tokens each), end to end, as int64."""
        chunks, n = self.chunk_of[rows].tolist(), lengths.tolist()
        return {k: np.concatenate([values[c][a:a + m] for c, a, m in zip(chunks, self.start[k][rows].tolist(), n)]
                                  ).astype(np.int64) for k, values in self.values.items()}


class PretrainData:
    """Training and held-out sequences of the shards (rows packed, `DataConfig.pack`), and the sequences of (step,
    rank, micro-batch)."""

    def __init__(self, cfg: PretrainConfig, rank: int, world_size: int):
        import pyarrow.compute as pc

        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        self.dataset = load_shards(cfg.data.shards)
        table = self.dataset.data
        self.doc_ids = table.column("doc_id").to_pylist()
        bucket = np.array([zlib.crc32(d.encode()) % 10_000 for d in self.doc_ids])
        held = bucket < cfg.data.eval_percent * 100
        train_rows = np.flatnonzero(~held)
        if not len(train_rows):
            raise ValueError(f"{cfg.data.shards}: no training sequences left after holding out "
                             f"{cfg.data.eval_percent}% of documents")
        # a word-view row is packed by its char-view twin's length, so both views group the same rows
        self.lengths = pc.list_value_length(table.column("input_ids")).to_numpy().astype(np.int64)
        lengths = table.column("char_len").to_numpy() if "char_len" in table.column_names else self.lengths
        self.columns = ShardColumns(table.table, [k for k in TOKEN_COLUMNS if k in table.column_names])
        pack_len = cfg.data.pack_len or cfg.model.max_position
        self.train = self._packs(train_rows, lengths, pack_len, np.random.default_rng([cfg.seed, 1]))
        # held-out packs do not depend on the run's seed, so every run evaluates the same sequences;
        # as many as divide evenly into micro-batches over the ranks, the same on every rank
        eval_rows, eval_offsets = self._packs(np.flatnonzero(held), lengths, pack_len,
                                              np.random.default_rng(EVAL_PACK_SEED))
        per_round = cfg.micro_batch * world_size
        n_eval = min(cfg.data.eval_sequences, len(eval_offsets) - 1) // per_round * per_round
        self.eval = (eval_rows, eval_offsets[:n_eval + 1])
        self.train_rows = train_rows
        self._epoch, self._order = -1, np.arange(self.train_sequences)

    def _packs(self, rows: np.ndarray, lengths: np.ndarray, pack_len: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if not self.cfg.data.pack:
            return rows, np.arange(len(rows) + 1)
        grouped, offsets = pack_rows(lengths[rows], pack_len, rng)
        return rows[grouped], offsets

    @property
    def train_sequences(self) -> int:
        return len(self.train[1]) - 1

    @property
    def eval_sequences(self) -> int:
        return len(self.eval[1]) - 1

    def real_fraction(self) -> float:
        """Share of the training sequences' positions that hold tokens, were each padded to the packed length
        (``pack_len``): how full packing made them (the loop measures what a batch really computes)."""
        rows, offsets = self.train
        pack_len = self.cfg.data.pack_len or self.cfg.model.max_position
        joined = self.lengths[rows].sum() - (len(rows) - self.train_sequences)  # each pack keeps one [CLS]
        return float(joined / (self.train_sequences * pack_len))

    def packing(self) -> dict[str, Any]:
        """How rows became sequences, for training.json."""
        d = self.cfg.data
        return {"pack": d.pack, "pack_len": d.pack_len or self.cfg.model.max_position, "attention": d.pack_attention,
                "rows": len(self.train_rows), "sequences": self.train_sequences, "fill": self.real_fraction()}

    def _order_of(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = np.random.default_rng([self.cfg.seed, epoch]).permutation(self.train_sequences)
        return self._order

    def rows(self, step: int, micro: int) -> list[dict[str, Any]]:
        """This rank's sequences for micro-batch ``micro`` of optimizer step ``step``."""
        mb = self.cfg.micro_batch
        start = step * self.cfg.batch_size + (micro * self.world_size + self.rank) * mb
        n = self.train_sequences
        return self._fetch(self.train, [int(self._order_of(p // n)[p % n]) for p in range(start, start + mb)])

    def eval_batches(self) -> list[tuple[list[int], list[dict[str, Any]]]]:
        """This rank's share of the held-out sequences, in micro-batches (every rank gets as many): (each
        sequence's place in the held-out set, the sequences). The place keys the evaluation masks, whatever the
        ranks."""
        mb, n = self.cfg.micro_batch, self.eval_sequences
        places = [list(range(i, min(i + mb, n))) for i in range(0, n, mb)]
        return [(p, self._fetch(self.eval, p)) for p in places[self.rank:: self.world_size]]

    def unigram_log_probs(self, vocab_size: int) -> np.ndarray:
        """log p(token) of the training rows' token frequencies, add-one smoothed over the vocab (V,): the
        unigram reference, a model that predicts every masked token without looking at anything."""
        import pyarrow.compute as pc

        rows = self.dataset.data.column("input_ids").take(self.train_rows)
        counts = np.bincount(pc.list_flatten(rows).to_numpy(), minlength=vocab_size).astype(np.float64) + 1
        return np.log(counts / counts.sum())

    @property
    def epoch_steps(self) -> float:
        return self.train_sequences / self.cfg.batch_size

    def _fetch(self, packs: tuple[np.ndarray, np.ndarray], which: list[int]) -> list[dict[str, Any]]:
        """Sequences ``which`` of ``packs`` as dicts of int64 token arrays, with the ``doc_ids`` of their rows
        (unpacked: the ``doc_id`` of the row)."""
        rows, offsets = packs
        which_ = np.asarray(which, np.int64)
        counts = offsets[which_ + 1] - offsets[which_]
        picked = rows[ranges(offsets[which_], counts)]
        columns, lengths = self.columns.gather(picked, self.lengths[picked]), self.lengths[picked]
        doc_ids = [self.doc_ids[i] for i in picked.tolist()]
        if not self.cfg.data.pack:
            return [row | {"doc_id": d} for row, d in zip(_split(columns, lengths), doc_ids)]
        packed, lengths = join_packs(columns, lengths, counts, self.cfg.data.pack_attention == "within")
        at = np.cumsum(counts) - counts
        return [row | {"doc_ids": doc_ids[a:a + c]} for row, a, c in
                zip(_split(packed, lengths), at.tolist(), counts.tolist())]


def _split(columns: dict[str, np.ndarray], lengths: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Columns end to end → one dict per row of ``lengths`` tokens (views, no copies)."""
    cuts = np.cumsum(lengths)[:-1]
    parts = {k: np.split(v, cuts) for k, v in columns.items()}
    return [dict(zip(parts, row)) for row in zip(*parts.values())]


def describe_row(row: dict[str, Any], masked: list[bool] | None, vocabs: Vocabs, limit: int = 40) -> str:
    """A training row as a person reads it: characters │ words │ pinyin │ masked for the char view, words │
    masked for the word view (whose tokens are words). ``masked``: the collator's choice for this row."""
    from zhbert.data.encode import describe

    row = {k: np.asarray(row[k]).tolist() for k in TOKEN_COLUMNS if k in row}  # ids as ints, as the tokenizer takes
    if "pinyin_ids" in row:
        return describe((row["input_ids"], row["word_ids"], row["pinyin_ids"]), vocabs.char, vocabs.pinyin,
                        masked, limit)
    tokens = [vocabs.tokens[i] for i in row["input_ids"][:limit]]
    out = " ".join(tokens)
    return out if masked is None else out + " │ " + " ".join("_" if m else t for t, m in zip(tokens, masked))
