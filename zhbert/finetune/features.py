"""Examples → model inputs for any of the three embedding kinds, keeping each token's character span.

Text goes through the same steps as pretraining, with the settings the export carries (``Export.text``): the
normaliser (its length-keeping form, ``Normalizer.aligned``, so full-width ，！１Ａ read as the ASCII the vocab
was built on while offsets still index the original string), jieba words with the same dictionaries and HMM
flag, and the `WordTokenizer` prep reads each word with (its char-vocab ids, and for the fusion model the pinyin
of every hanzi, by the reader that read the shards: the context reader reads the characters it leaves open
within each sentence). Each token keeps the [start, end) of the characters it covers, so entity and answer spans
map onto tokens and predictions map back onto characters of the original text exactly. For the word-level model
a word in the word vocab becomes one token spanning the whole word (else its char tokens, as in ``word_view``);
an entity boundary that falls inside such a token cannot be represented and is counted
(``TaskFeatures.boundaries_inside``). [UNK] tokens are counted too, as prep counts them.

What the tokens of an example become (truncated or cut into windows, and labelled) is up to its task kind
(``zhbert/finetune/kinds.py``); the counts are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from zhbert.data.pinyin import PinyinVocab
from zhbert.data.segment import Segmenter
from zhbert.data.text import Normalizer, sentence_spans
from zhbert.data.tokenizer import WordTokenizer, WordTokens, WordVocab
from zhbert.export import Export
from zhbert.finetune.kinds import kind_of
from zhbert.finetune.tasks import Example, TaskSpec
from zhbert.model.model import IGNORE

Token = tuple[int, int, int, int]  # id, pinyin id, char start, char end


@dataclass
class Feature:
    """One model input. ``spans``: [start, end) characters of each position in the example's text (the
    context for span tasks); (-1, -1) for specials, sentence B and the question."""

    example: int
    input_ids: list[int]
    token_type_ids: list[int]
    pinyin_ids: list[int]
    spans: list[tuple[int, int]]
    label: int | list[int] | tuple[int, int] | None = None  # class | tag per position | (start, end) position


@dataclass
class TaskFeatures:
    features: list[Feature]
    truncated: int = 0  # examples cut short (classification)
    windowed: int = 0  # examples read in more than one window (token, span)
    boundaries: int = 0  # entity / answer boundaries
    boundaries_inside: int = 0  # … that fell inside a token (a word, for the word-level model)
    tokens: int = 0  # tokens of the examples' texts, before truncation and windows
    unk_tokens: int = 0  # … that are [UNK]
    counts: dict[str, int] = field(default_factory=dict)


class TaskEncoder:
    def __init__(self, export: Export, spec: TaskSpec, max_len: int, stride: int, max_query_len: int = 64) -> None:
        if max_len > export.model.max_position:
            raise ValueError(f"max_len {max_len} exceeds the max_position {export.model.max_position} of the model in "
                             f"{export.folder} (it has no position embeddings beyond that); lower --max_len")
        self.spec, self.max_len, self.stride, self.max_query_len = spec, max_len, stride, max_query_len
        self.kind = kind_of(spec)
        self.vocab = export.vocab
        self.normalize = Normalizer(export.text.normalize)
        self.segmenter = Segmenter(export.text.segment)
        fusion = export.model.inputs.pinyin
        self.words = WordTokenizer(export.vocab, export.pinyin if fusion else None,
                                   export.text.context_reader() if fusion else None,
                                   WordVocab(export.vocab, export.word_tokens) if export.word_tokens is not None
                                   else None)
        self._cache: dict[str, WordTokens] = {}
        tokens = export.vocab.tokens + (export.word_tokens[len(export.vocab):] if export.word_tokens else [])
        self.surfaces = [_surface(t) for t in tokens]
        """The text each token id of the model stands for ('' for specials and [unusedN])."""
        self._ids: dict[str, int] = {}
        for i in sorted(range(len(tokens)), key=lambda i: tokens[i].startswith("##")):  # a piece before a ##piece
            if self.surfaces[i]:
                self._ids.setdefault(self.surfaces[i], i)

    def token_id(self, text: str) -> int:
        """The id of the token that stands for ``text``; IGNORE where the model has none."""
        return self._ids.get(text, IGNORE)

    # -- text → tokens with character spans --------------------------------------------------------
    def tokens(self, text: str) -> list[Token]:
        """Tokens of ``text`` with their spans in it (normalised as in pretraining, length kept)."""
        text = self.normalize.aligned(text)
        out: list[Token] = []
        open_: list[bool] = []
        pos = 0
        for word in self.segmenter.cut(text):
            start = text.index(word, pos) if not text.startswith(word, pos) else pos
            toks = self._cache.get(word)
            if toks is None:
                toks = self._cache[word] = self.words(word)
            out += [(i, p, start + a, start + b) for i, p, (a, b) in zip(toks.ids, toks.pinyin, toks.offsets)]
            open_ += toks.open
            pos = start + len(word)
        return self._in_context(text, out, open_) if any(open_) else out

    def _in_context(self, text: str, out: list[Token], open_: list[bool]) -> list[Token]:
        """``out`` with the pinyin of its ``open_`` tokens read in context, in the sentences prep would cut."""
        spans = sentence_spans(text)
        starts = np.array([a for a, _ in spans])
        lens = np.array([b - a for a, b in spans])
        joined_start = np.cumsum(lens) - lens + np.arange(len(spans))  # where each sentence starts, \x00 between
        at = np.flatnonzero(open_)
        chars = np.array([out[t][2] for t in at])
        k = np.searchsorted(starts, chars, side="right") - 1  # the sentence of each
        pys = np.zeros(len(at), np.int16)
        self.words.in_context(pys, np.arange(len(at)), "\x00".join(text[a:b] for a, b in spans),
                              joined_start[k] + chars - starts[k])
        out = list(out)
        for t, p in zip(at.tolist(), pys.tolist()):
            out[t] = (out[t][0], p, out[t][2], out[t][3])
        return out

    # -- examples → features ---------------------------------------------------------------------
    def encode(self, examples: list[Example]) -> TaskFeatures:
        enc = TaskFeatures([])
        for n, ex in enumerate(examples):
            self.kind.encode(self, n, ex, enc)
        enc.counts = {"examples": len(examples), "features": len(enc.features), "truncated": enc.truncated,
                      "windowed": enc.windowed, "tokens": enc.tokens, "unk_tokens": enc.unk_tokens} | enc.counts
        if self.kind.boundaries:
            enc.counts |= {"boundaries": enc.boundaries, "boundaries_inside_token": enc.boundaries_inside}
        return enc

    def read(self, text: str, enc: TaskFeatures) -> list[Token]:
        """``tokens``, counted (tokens and [UNK]s) into ``enc``."""
        toks = self.tokens(text)
        enc.tokens += len(toks)
        enc.unk_tokens += sum(t[0] == self.vocab.unk_id for t in toks)
        return toks

    def feature(self, n: int, a: list[Token], b: list[Token] | None, label, keep_spans: str) -> Feature:
        """``[CLS] a [SEP]`` or ``[CLS] a [SEP] b [SEP]`` for example ``n``; ``keep_spans`` names the sequence whose
        character spans are kept ("a" or "b")."""
        cls_, sep = self.vocab.cls_id, self.vocab.sep_id
        toks = [(cls_, 0, -1, -1), *a, (sep, 0, -1, -1)] + ([*b, (sep, 0, -1, -1)] if b is not None else [])
        types = [0] * (len(a) + 2) + [1] * (len(b) + 1 if b is not None else 0)
        spans = [(s, e) for _, _, s, e in toks]
        if keep_spans == "a":
            spans = [sp if 0 < i <= len(a) else (-1, -1) for i, sp in enumerate(spans)]
        elif keep_spans == "b":
            spans = [sp if i > len(a) + 1 and i < len(toks) - 1 else (-1, -1) for i, sp in enumerate(spans)]
        return Feature(n, [t[0] for t in toks], types, [t[1] for t in toks], spans, label)


def _surface(token: str) -> str:
    """A vocab token's text: a wordpiece without its ##, nothing for [CLS], [UNK], [unused1] and the like."""
    return "" if token.startswith("[") and token.endswith("]") else token.removeprefix("##")


def length_grouped(lengths: list[int], batch_size: int, generator: torch.Generator, group: int) -> list[list[int]]:
    """One epoch's batches (indices into ``lengths``) of similar lengths, as Hugging Face's ``group_by_length``: a
    random order cut into groups of ``group`` batches, each group sorted by length and cut into batches, then the
    batches shuffled. Random batches of the bundled tasks are half padding (``collate`` pads to the longest);
    with groups of 50 batches almost none, while what a batch holds and when it comes still change with the seed."""
    perm = torch.randperm(len(lengths), generator=generator).tolist()
    span = group * batch_size
    batches = []
    for g in range(0, len(perm), span):
        chunk = sorted(perm[g:g + span], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def collate(features: list[Feature], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest feature: input_ids, attention_mask, token_type_ids, pinyin_ids (B, T) and
    labels (B,) | (B, T) or start_positions / end_positions (B,)."""
    T = max(len(f.input_ids) for f in features)

    def pad(rows: list[list[int]], value: int) -> torch.Tensor:
        return torch.tensor([r + [value] * (T - len(r)) for r in rows], dtype=torch.long)

    batch = {"input_ids": pad([f.input_ids for f in features], pad_id),
             "attention_mask": pad([[1] * len(f.input_ids) for f in features], 0),
             "token_type_ids": pad([f.token_type_ids for f in features], 0),
             "pinyin_ids": pad([f.pinyin_ids for f in features], PinyinVocab.PAD)}
    labels = [f.label for f in features]
    if labels[0] is None:
        return batch
    if isinstance(labels[0], tuple):
        batch["start_positions"] = torch.tensor([s for s, _ in labels])
        batch["end_positions"] = torch.tensor([e for _, e in labels])
    elif isinstance(labels[0], list):
        batch["labels"] = pad(labels, IGNORE)
    else:
        batch["labels"] = torch.tensor(labels)
    return batch
