"""The word tokeniser: one jieba word → its tokens, as prep, the word view and fine-tuning all read it.

A word of plain hanzi is one char-vocab token per character (the vocab's tokenizer would make the same tokens, so
its pipeline is skipped); any other word goes through the tokenizer (wordpieces, lower case …). Each token keeps
the [start, end) characters of the word it covers and, when pinyin is read, the pinyin id of its hanzi: each word
read alone by pypinyin's dictionaries (`Readings`), or by a `ContextReader`, which leaves a few characters open
(了 / 还 / 行 alone …) to be read from their neighbours in the sentence (``in_context``).

A word-level model reads a word of its word vocab (`WordVocab`) as one token spanning the whole word.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from zhbert.data.pinyin import ContextReader, PinyinVocab, Readings, context_codes
from zhbert.data.text import BASIC_HANZI, HANZI, is_hanzi
from zhbert.data.vocab import CharVocab


class WordTokens(NamedTuple):
    """The tokens of one word; ``open``: which ones the context reader reads from their neighbours (only ever in a
    word of plain hanzi, where token k is character k)."""

    ids: tuple[int, ...]
    pinyin: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...]
    open: tuple[bool, ...]


def surface(tokens: list[str], ids: Sequence[int], start: int = 0, end: int | None = None) -> str:
    """The text of tokens ``ids[start:end]`` (wordpieces lose their ``##``): how a word is looked up in the word
    vocab."""
    return "".join(tokens[i].removeprefix("##") for i in ids[start:end])


class WordVocab:
    """The word vocab (``word_vocab.txt``): the whole char vocab at its own ids, then multi-token words."""

    def __init__(self, vocab: CharVocab, word_tokens: list[str]) -> None:
        self.tokens, self.unk = vocab.tokens, vocab.unk_id
        self.ids = {w: i for i, w in enumerate(word_tokens) if i >= len(vocab)}

    def id(self, ids: Sequence[int]) -> int | None:
        """The word id of a word spelt by these char tokens; None for a single token, a word holding [UNK] (its
        text is unknown) and a word outside the vocab, which are read as their char tokens."""
        if len(ids) < 2 or self.unk in ids:
            return None
        return self.ids.get(surface(self.tokens, ids))


class WordTokenizer:
    """``pinyin``: None for a model that reads no pinyin (every pinyin id [PAD]); ``context``: the reader of
    heteronyms in context, None to read each word alone; ``words``: the word vocab of a word-level model."""

    def __init__(self, vocab: CharVocab, pinyin: PinyinVocab | None, context: ContextReader | None = None,
                 words: WordVocab | None = None) -> None:
        if context is not None and pinyin is None:
            raise ValueError("a context reader reads pinyin: give the pinyin vocab too")
        self.vocab, self.pinyin, self.context, self.words = vocab, pinyin, context, words
        self.readings = Readings()
        if context is not None:  # (C, K) pinyin id of each candidate reading of each character the model reads
            self._candidate_ids = np.array([[pinyin.ids.get(r, PinyinVocab.UNK) for r in c]
                                            + [PinyinVocab.UNK] * (context.weights.shape[1] - len(c))
                                            for c in context.candidates], dtype=np.int16)
        self._token_ids = vocab.tokenizer.get_vocab()

    def __call__(self, word: str) -> WordTokens:
        """The tokens of one jieba word, offsets relative to the word; whitespace words have none."""
        if BASIC_HANZI.fullmatch(word):  # the tokenizer makes each such char a token: skip its pipeline
            unk = self.vocab.unk_id
            ids = tuple(self._token_ids.get(c, unk) for c in word)
            offsets = tuple((i, i + 1) for i in range(len(word)))
            pinyin, open_ = self._hanzi_pinyin(word)
        else:
            enc = self.vocab.tokenizer.encode(word, add_special_tokens=False)
            ids, offsets, open_ = tuple(enc.ids), tuple(enc.offsets), (False,) * len(enc.ids)
            pinyin = self._token_pinyin(word, offsets)
        if self.words is not None:
            wid = self.words.id(ids)
            if wid is not None:
                return WordTokens((wid,), (PinyinVocab.PAD,), ((offsets[0][0], offsets[-1][1]),), (False,))
        return WordTokens(ids, pinyin, offsets, open_)

    def _hanzi_pinyin(self, word: str) -> tuple[tuple[int, ...], tuple[bool, ...]]:
        """Pinyin ids and open flags of a word of plain hanzi, one per character."""
        if self.pinyin is None:
            return (PinyinVocab.PAD,) * len(word), (False,) * len(word)
        readings, open_ = self.context.word(word) if self.context else (self.readings(word), [False] * len(word))
        ids = self.pinyin.ids
        return tuple(ids.get(r, PinyinVocab.UNK) for r in readings), tuple(open_)

    def _token_pinyin(self, word: str, offsets: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
        """Pinyin ids of the tokens of any other word: a token that is one hanzi has its reading in the word."""
        if self.pinyin is None or not HANZI.search(word):
            return (PinyinVocab.PAD,) * len(offsets)
        readings = self.context.word(word)[0] if self.context else self.readings(word)
        ids = self.pinyin.ids
        return tuple(ids.get(readings[start], PinyinVocab.UNK) if readings and end - start == 1
                     and is_hanzi(word[start]) else PinyinVocab.PAD for start, end in offsets)

    def in_context(self, pys: np.ndarray, open_: np.ndarray, text: str, chars: np.ndarray) -> None:
        """Set ``pys`` at the ``open_`` token positions from the context reader; ``chars``: where each of those
        tokens is in ``text``, a stream of sentences joined by \\x00 (`context_codes`)."""
        if self.context is not None and len(open_):
            rows, pick = self.context.choose(context_codes(text), chars)
            pys[open_] = self._candidate_ids[rows, pick]
