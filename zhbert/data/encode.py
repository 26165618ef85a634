"""Documents → packed training sequences of the char view.

Per sentence: jieba words → for each word its char-vocab ids and the pinyin id of every hanzi, looked up
once per distinct word (Zipf: a small cache answers almost every lookup). Sentences are then packed
greedily into ``[CLS] … [SEP]`` sequences of at most ``max_len`` tokens that never span two documents;
a sentence longer than a sequence is cut at word boundaries.

Columns (DESIGN.md "Shards"): ``input_ids``; ``word_ids`` — which word of the sequence each token
belongs to, numbered from 0, specials -1; ``pinyin_ids`` — 0 where a token is not a hanzi. A hanzi
missing from the char vocab becomes [UNK] but keeps its own reading: the model still hears it.
"""

from __future__ import annotations

from dataclasses import dataclass

from zhbert.data.pinyin import PinyinVocab, Readings
from zhbert.data.segment import Segmenter
from zhbert.data.tally import Tally
from zhbert.data.text import BASIC_HANZI, HANZI, is_hanzi, split_sentences
from zhbert.data.vocab import CharVocab

CACHE_LIMIT = 2_000_000  # distinct words kept; cleared when full so memory stays bounded on huge corpora


@dataclass
class PackConfig:
    """How sentences become training sequences."""

    max_len: int = 128
    """Tokens per sequence, [CLS] and [SEP] included."""


Piece = tuple[list[int], list[int], list[int]]  # input_ids, word_ids, pinyin_ids


class DocumentEncoder:
    def __init__(self, vocab: CharVocab, pinyin: PinyinVocab, segmenter: Segmenter, pack: PackConfig):
        if pack.max_len < 8:
            raise ValueError(f"pack.max_len={pack.max_len} is too small (at least 8)")
        self.vocab, self.pinyin, self.segmenter = vocab, pinyin, segmenter
        self.limit = pack.max_len - 2
        self.readings = Readings()
        self._token_ids = vocab.tokenizer.get_vocab()
        self._words: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def word(self, word: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(token ids, pinyin ids) of one jieba word; whitespace words have no tokens."""
        hit = self._words.get(word)
        if hit is not None:
            return hit
        pinyin_ids = self.pinyin.ids
        if BASIC_HANZI.fullmatch(word):  # the tokenizer makes each such char a token: skip its pipeline
            unk = self.vocab.unk_id
            ids = tuple(self._token_ids.get(c, unk) for c in word)
            py = tuple(pinyin_ids.get(r, PinyinVocab.UNK) for r in self.readings(word))
        else:
            enc = self.vocab.tokenizer.encode(word, add_special_tokens=False)
            ids = tuple(enc.ids)
            readings = self.readings(word) if HANZI.search(word) else None
            py = tuple(pinyin_ids.get(readings[start], PinyinVocab.UNK)
                       if readings and end - start == 1 and is_hanzi(word[start]) else PinyinVocab.PAD
                       for start, end in enc.offsets)
        if len(self._words) >= CACHE_LIMIT:
            self._words.clear()
        hit = self._words[word] = (ids, py)
        return hit

    def sentence(self, text: str) -> Piece:
        ids: list[int] = []
        word_ids: list[int] = []
        pinyin_ids: list[int] = []
        w = 0
        get = self._words.get
        for word in self.segmenter.cut(text):
            hit = get(word) or self.word(word)
            tok = hit[0]
            if tok:
                ids += tok
                pinyin_ids += hit[1]
                word_ids += [w] * len(tok)
                w += 1
        return ids, word_ids, pinyin_ids

    def document(self, text: str, tally: Tally) -> list[Piece]:
        """Packed sequences of one document, with [CLS]/[SEP] added."""
        limit, out = self.limit, []
        cur: Piece = ([], [], [])
        for sent in split_sentences(text):
            tally.add("sentences")
            for piece in self._fit(self.sentence(sent), tally):
                if cur[0] and len(cur[0]) + len(piece[0]) > limit:
                    out.append(self._close(cur))
                    cur = ([], [], [])
                offset = cur[1][-1] + 1 if cur[1] else 0
                cur[0].extend(piece[0])
                cur[1].extend(w + offset for w in piece[1])
                cur[2].extend(piece[2])
        if cur[0]:
            out.append(self._close(cur))
        return out

    def _fit(self, piece: Piece, tally: Tally) -> list[Piece]:
        """Cut a sentence longer than a sequence at word boundaries (inside a word only if it must)."""
        ids, word_ids, pinyin_ids = piece
        if len(ids) <= self.limit:
            return [piece] if ids else []
        tally.add("long_sentences_cut")
        out, start = [], 0
        while start < len(ids):
            end = min(start + self.limit, len(ids))
            if end < len(ids) and word_ids[end] == word_ids[end - 1]:  # back off to the word's start
                back = end
                while back > start and word_ids[back - 1] == word_ids[end]:
                    back -= 1
                end = back if back > start else end
            first = word_ids[start]
            out.append((ids[start:end], [w - first for w in word_ids[start:end]], pinyin_ids[start:end]))
            start = end
        return out

    def _close(self, piece: Piece) -> Piece:
        ids, word_ids, pinyin_ids = piece
        return ([self.vocab.cls_id, *ids, self.vocab.sep_id], [-1, *word_ids, -1],
                [PinyinVocab.PAD, *pinyin_ids, PinyinVocab.PAD])


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
