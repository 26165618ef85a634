"""Documents → packed training sequences of the char view.

A batch of documents at a time: sentences → jieba words → each word's char-vocab ids and the pinyin id
of every hanzi (`WordTokenizer`), worked out once per distinct word and kept in a table of word types (Zipf:
the table soon answers almost every word). The tokens of the batch are then gathered from that table with numpy,
so no Python code runs per token. Sentences are packed greedily into ``[CLS] … [SEP]`` sequences of at
most ``max_len`` tokens that never span two documents; a sentence longer than a sequence is cut at
word boundaries.

Pinyin: each word's readings come with it from the table; with a `ContextReader`, the few characters it leaves
open (了 / 还 / 行 alone …) are then read from their neighbours in the sentence, for the whole batch at once.

Columns (docs/architecture.md, "Contracts"): ``input_ids``; ``word_ids`` — which word of the sequence each token
belongs to, numbered from 0, specials -1; ``pinyin_ids`` — 0 where a token is not a hanzi. A hanzi
missing from the char vocab becomes [UNK] but keeps its own reading: the model still hears it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np

from zhbert.data.pinyin import ContextReader, PinyinVocab
from zhbert.data.segment import Segmenter
from zhbert.data.tally import Tally
from zhbert.data.text import split_sentences
from zhbert.data.tokenizer import WordTokenizer
from zhbert.data.vocab import CharVocab

TYPE_LIMIT = 2_000_000  # distinct words kept; the table restarts when full so memory stays bounded


@dataclass
class PackConfig:
    """How sentences become training sequences."""

    max_len: int = 128
    """Tokens per sequence, [CLS] and [SEP] included."""


Piece = tuple[list[int], list[int], list[int]]  # input_ids, word_ids, pinyin_ids


@dataclass
class Encoded:
    """Packed sequences of a batch of documents, flat: sequence k is ``[offsets[k], offsets[k+1])``."""

    input_ids: np.ndarray  # (N,) int32
    word_ids: np.ndarray  # (N,) int32, -1 on [CLS]/[SEP]
    pinyin_ids: np.ndarray  # (N,) int16
    offsets: np.ndarray  # (S+1,) int64
    doc_index: np.ndarray  # (S,) the input document each sequence comes from

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def sequence(self, k: int) -> Piece:
        a, b = self.offsets[k], self.offsets[k + 1]
        return self.input_ids[a:b].tolist(), self.word_ids[a:b].tolist(), self.pinyin_ids[a:b].tolist()


class DocumentEncoder:
    """``context``: the reader of heteronyms in context; None reads each word alone (`Readings`)."""

    def __init__(self, vocab: CharVocab, pinyin: PinyinVocab, segmenter: Segmenter, pack: PackConfig,
                 context: ContextReader | None = None):
        if pack.max_len < 8:
            raise ValueError(f"pack.max_len={pack.max_len} is too small (at least 8)")
        self.vocab, self.segmenter = vocab, segmenter
        self.limit = pack.max_len - 2
        self.tokenizer = WordTokenizer(vocab, pinyin, context)
        self._reset_types()

    def _reset_types(self) -> None:
        """The word-type table: type t has tokens ``_tok[_start[t] : _start[t] + _len[t]]`` (and pinyin)."""
        self._type: dict[str, int] = {}
        self._start = np.zeros(0, dtype=np.int64)
        self._len = np.zeros(0, dtype=np.int64)
        self._tok = np.zeros(0, dtype=np.int32)
        self._py = np.zeros(0, dtype=np.int16)
        self._open = np.zeros(0, dtype=bool)  # per token: read in context (`WordTokens.open`)
        self._nchars = np.zeros(0, dtype=np.int64)  # per type: characters of the word

    def _types(self, words: list[str]) -> np.ndarray:
        """Word-type id of every word; new words are worked out once and added to the table."""
        if len(self._type) > TYPE_LIMIT:
            self._reset_types()
        idx = list(map(self._type.get, words))
        if None in idx:
            new = list(dict.fromkeys(w for w, t in zip(words, idx) if t is None))
            entries = [self.tokenizer(w) for w in new]
            lens = np.array([len(e.ids) for e in entries], dtype=np.int64)
            self._type.update(zip(new, range(len(self._len), len(self._len) + len(new))))
            self._start = np.concatenate([self._start, len(self._tok) + np.cumsum(lens) - lens])
            self._len = np.concatenate([self._len, lens])
            self._tok = np.concatenate([self._tok, np.fromiter(chain.from_iterable(e.ids for e in entries), np.int32)])
            self._py = np.concatenate([self._py, np.fromiter(chain.from_iterable(e.pinyin for e in entries), np.int16)])
            self._open = np.concatenate([self._open, np.fromiter(chain.from_iterable(e.open for e in entries), bool)])
            self._nchars = np.concatenate([self._nchars, np.fromiter(map(len, new), np.int64, len(new))])
            idx = list(map(self._type.get, words))
        return np.array(idx, dtype=np.int64)

    def encode(self, texts: list[str], tally: Tally) -> Encoded:
        words: list[str] = []
        sentences: list[str] = []
        sent_words: list[int] = []  # words per sentence
        sent_doc: list[int] = []  # document of each sentence
        for d, text in enumerate(texts):
            for sent in split_sentences(text):
                cut = self.segmenter.cut(sent)
                words += cut
                sentences.append(sent)
                sent_words.append(len(cut))
                sent_doc.append(d)
        tally.add("sentences", len(sent_words))

        # every token of the batch, gathered from the word-type table
        types = self._types(words)
        lens = self._len[types]
        sent_of_word = np.repeat(np.arange(len(sent_words)), sent_words)
        nchars = self._nchars[types]
        char_start = np.cumsum(nchars) - nchars + sent_of_word  # in the sentences joined by \x00
        keep = lens > 0  # whitespace words have no tokens
        types, lens, sent_of_word, char_start = types[keep], lens[keep], sent_of_word[keep], char_start[keep]
        word_start = np.cumsum(lens) - lens
        src = np.repeat(self._start[types] - word_start, lens) + np.arange(lens.sum())
        ids, pys = self._tok[src], self._py[src]  # (tokens,)
        word_of = np.repeat(np.arange(len(types)), lens)  # word index (in the batch) of each token
        open_ = np.flatnonzero(self._open[src])
        w = word_of[open_]
        self.tokenizer.in_context(pys, open_, "\x00".join(sentences), char_start[w] + open_ - word_start[w])
        sent_len = np.bincount(sent_of_word, weights=lens, minlength=len(sent_words)).astype(np.int64)
        sent_start = np.cumsum(sent_len) - sent_len

        spans = self._pack(sent_start.tolist(), sent_len.tolist(), sent_doc, word_of, tally)
        return self._assemble(spans, ids, pys, word_of)

    def _pack(self, sent_start: list[int], sent_len: list[int], sent_doc: list[int], word_of: np.ndarray,
              tally: Tally) -> list[tuple[int, int, int]]:
        """Greedy packing of whole sentences: (first token, end token, document) per sequence."""
        limit, out = self.limit, []
        a = b = doc = -1
        for start, n, d in zip(sent_start, sent_len, sent_doc):
            if n == 0:
                continue
            if d != doc and a >= 0:
                out.append((a, b, doc))
                a = -1
            doc = d
            for pa, pb in [(start, start + n)] if n <= limit else self._cut(word_of, start, start + n, tally):
                if a >= 0 and (b - a) + (pb - pa) > limit:
                    out.append((a, b, doc))
                    a = -1
                if a < 0:
                    a = pa
                b = pb
        if a >= 0:
            out.append((a, b, doc))
        return out

    def _cut(self, word_of: np.ndarray, a: int, b: int, tally: Tally) -> list[tuple[int, int]]:
        """A sentence longer than a sequence, cut at word boundaries (inside a word only if it must)."""
        tally.add("long_sentences_cut")
        out, start = [], a
        while start < b:
            end = min(start + self.limit, b)
            if end < b and word_of[end] == word_of[end - 1]:  # back off to the start of the word
                back = end
                while back > start and word_of[back - 1] == word_of[end]:
                    back -= 1
                end = back if back > start else end
            out.append((start, end))
            start = end
        return out

    def _assemble(self, spans: list[tuple[int, int, int]], ids: np.ndarray, pys: np.ndarray,
                  word_of: np.ndarray) -> Encoded:
        """[CLS] + tokens + [SEP] per span; word ids renumbered from 0 in each sequence."""
        starts = np.array([s[0] for s in spans], dtype=np.int64)
        size = np.array([s[1] - s[0] + 2 for s in spans], dtype=np.int64)
        offsets = np.zeros(len(spans) + 1, dtype=np.int64)
        np.cumsum(size, out=offsets[1:])
        pos = np.arange(offsets[-1]) - np.repeat(offsets[:-1], size)  # position inside its sequence
        special = (pos == 0) | (pos == np.repeat(size - 1, size))
        src = np.where(special, 0, np.repeat(starts, size) + pos - 1)
        out_ids = np.where(pos == 0, self.vocab.cls_id, np.where(special, self.vocab.sep_id, ids[src]))
        first_word = np.repeat(word_of[starts] if len(spans) else starts, size)
        out_words = np.where(special, -1, word_of[src] - first_word)
        out_py = np.where(special, PinyinVocab.PAD, pys[src])
        return Encoded(out_ids.astype(np.int32), out_words.astype(np.int32), out_py.astype(np.int16), offsets,
                       np.array([s[2] for s in spans], dtype=np.int64))


def describe(piece: Piece, vocab: CharVocab, pinyin: PinyinVocab, masked: list[bool] | None = None,
             limit: int = 40) -> str:
    """One sequence as a person reads it: characters │ words │ pinyin (│ masked)."""
    ids, word_ids, pinyin_ids = (p[:limit] for p in piece)
    tokens = [vocab.tokenizer.id_to_token(i) for i in ids]
    words: list[str] = []
    for tok, w, prev in zip(tokens, word_ids, [None, *word_ids]):
        piece_text = tok.removeprefix("##")
        if w >= 0 and w == prev and words:
            words[-1] += piece_text
        else:
            words.append(piece_text)
    out = ["".join(t.removeprefix("##") if not t.startswith("[") else t for t in tokens), " ".join(words),
           " ".join(pinyin.entries[p] for p in pinyin_ids if p)]
    if masked is not None:
        out.append("".join("_" if m else t for t, m in zip(tokens, masked[:limit])))
    return " │ ".join(out)
