"""Pinyin: a vocabulary of toned syllables and the reading of each character in its word and sentence.

Syllables are written the TONE3 way (``zhong1``), neutral tone explicit (``de5``), ``ü`` as ``v``
(``lv4``) and ``ê`` as ``eh`` so every syllable is lowercase a–z plus one tone digit.

Two readers (``PrepConfig.pinyin``): ``word`` reads each jieba word with pypinyin's phrase and character
dictionaries (银行 → hang2, 行走 → xing2; 87.6 % on the CPP benchmark, below "always the most common
reading"), ``context`` (the default, 96.0 %) adds what a neural reader and a POS-tagged corpus taught a tiny
one (`ContextReader`: a word table and a linear model over the neighbouring characters, in
``pinyin_context.npz``). ``benchmarks/pinyin_accuracy.py`` measures both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from zhbert.data.text import BASIC_HANZI
from zhbert.files import read_tokens, sha256_file, tokens_sha256, write_tokens
from zhbert.layout import PINYIN_VOCAB

Reader = Literal["context", "word"]
CONTEXT_FILE = Path(__file__).with_name("pinyin_context.npz")
OTHER, EDGE = 0, 1  # context codes: a character that is not a hanzi; beyond the sentence (or a separator: \x00)
OFFSETS = (-2, -1, 1, 2)  # neighbours the context model looks at



def _spell(syllable: str) -> str:
    return syllable.replace("ê", "eh")


class PinyinVocab:
    """id 0 [PAD]: not a hanzi (and padding); 1 [UNK]: a hanzi without a known reading; 2 [MASK]."""

    SPECIALS = ("[PAD]", "[UNK]", "[MASK]")
    PAD, UNK, MASK = 0, 1, 2

    def __init__(self, entries: list[str]):
        if tuple(entries[: len(self.SPECIALS)]) != self.SPECIALS:
            raise ValueError(f"pinyin vocab must start with {self.SPECIALS}, got {entries[:3]}")
        self.entries = entries
        self.ids = {s: i for i, s in enumerate(entries)}

    @classmethod
    def build(cls) -> PinyinVocab:
        """Every toned syllable in pypinyin's character and phrase dictionaries."""
        from pypinyin.contrib.tone_convert import to_tone3
        from pypinyin.phrases_dict import phrases_dict
        from pypinyin.pinyin_dict import pinyin_dict

        readings = {p for v in pinyin_dict.values() for p in v.split(",")}
        readings.update(p for v in phrases_dict.values() for ps in v for p in ps)
        syllables = {_spell(to_tone3(p, neutral_tone_with_five=True)) for p in readings}
        return cls([*cls.SPECIALS, *sorted(syllables)])

    @classmethod
    def load(cls, folder: str | Path) -> PinyinVocab:
        return cls(read_tokens(Path(folder) / PINYIN_VOCAB, f"build it with `zhbert vocab pinyin --out {folder}`"))

    def save(self, folder: str | Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        write_tokens(Path(folder) / PINYIN_VOCAB, self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def sha256(self) -> str:
        return tokens_sha256(self.entries)


class Readings:
    """``word → syllables`` from pypinyin's own character and phrase dictionaries, looked up directly.

    The same readings as `word_pinyin` (pypinyin's public API; a test checks every word of a corpus
    sample) at a fraction of the cost, by pypinyin's own rule: a single character or a dictionary
    phrase is one lookup; any other word is split by pypinyin's segmenter, and each piece is read as a
    dictionary phrase or character by character. The phrase dictionary only holds phrases whose reading
    differs from their characters' (新年, 朋友 are absent), so most words hold no phrase at all and
    read character by character without running the segmenter.
    """

    def __init__(self) -> None:
        from pypinyin.phrases_dict import phrases_dict
        from pypinyin.pinyin_dict import pinyin_dict

        self._chars, self._phrases = pinyin_dict, phrases_dict
        self._tone3: dict[str, str] = {}
        self._char_memo: dict[str, str] = {}

    def _convert(self, marked: str) -> str:
        hit = self._tone3.get(marked)
        if hit is None:
            from pypinyin.contrib.tone_convert import to_tone3

            hit = self._tone3[marked] = _spell(to_tone3(marked, neutral_tone_with_five=True))
        return hit

    def _char(self, ch: str) -> str:
        hit = self._char_memo.get(ch)
        if hit is None:
            marked = self._chars.get(ord(ch))
            hit = self._char_memo[ch] = self._convert(marked.split(",")[0]) if marked else ""
        return hit

    def every(self, ch: str) -> set[str]:
        """Every reading of ``ch`` in the character dictionary (a heteronym has several); empty if none."""
        marked = self._chars.get(ord(ch))
        return {self._convert(r) for r in marked.split(",")} if marked else set()

    def _phrase(self, word: str) -> list[str] | None:
        phrase = self._phrases.get(word)
        return [self._convert(p[0]) for p in phrase] if phrase and len(phrase) == len(word) else None

    def in_phrase(self, word: str) -> bool:
        """Whether some piece of ``word`` (two characters or more) is a phrase of the dictionary."""
        phrases, n = self._phrases, len(word)
        if n < 3:  # most words: one lookup, or none
            return n == 2 and word in phrases
        return any(word[i:j] in phrases for i in range(n - 1) for j in range(i + 2, n + 1))

    def alone(self, word: str) -> list[str]:
        """Each character read by itself: what a word reads when no piece of it is a phrase (`in_phrase`)."""
        return [self._char(c) for c in word]

    def __call__(self, word: str) -> list[str]:
        if len(word) == 1:
            return [self._char(word)]
        whole = self._phrase(word)
        if whole is not None:
            return whole
        if not self.in_phrase(word):  # no piece pypinyin's segmenter could cut is a dictionary phrase
            return self.alone(word)
        from pypinyin.seg.simpleseg import seg  # pypinyin's own split into dictionary phrases

        out: list[str] = []
        for piece in seg(word):
            out += (len(piece) > 1 and self._phrase(piece)) or [self._char(c) for c in piece]
        return out


def word_pinyin(word: str) -> list[str]:
    """One TONE3 syllable per character of ``word`` ('' for characters without a reading)."""
    from pypinyin import Style, lazy_pinyin

    out = lazy_pinyin(word, style=Style.TONE3, neutral_tone_with_five=True, errors=lambda s: [""] * len(s))
    if len(out) != len(word):  # pypinyin keeps one item per character with this errors hook; be sure
        out = [lazy_pinyin(c, style=Style.TONE3, neutral_tone_with_five=True, errors=lambda s: [""])[0]
               for c in word]
    return [_spell(s) for s in out]


def reader_record(reader: Reader, context: Path = CONTEXT_FILE) -> dict[str, str]:
    """What reads the pinyin, for manifests and export folders: shards read differently must not be mixed."""
    from importlib.metadata import version

    record = {"reader": reader, "pypinyin": version("pypinyin")}
    return record | {"context_sha256": sha256_file(context)} if reader == "context" else record


def context_codes(text: str) -> np.ndarray:
    """(len(text),) int64 code of each character as the context model sees it: a hanzi's code point, OTHER for
    anything else, EDGE for \\x00 (what joins sentences in a stream, so no context reaches across them)."""
    cp = np.frombuffer(text.encode("utf-32-le"), np.uint32).astype(np.int64)
    hanzi = ((cp == 0x3007) | ((cp >= 0x3400) & (cp <= 0x4DBF)) | ((cp >= 0x4E00) & (cp <= 0x9FFF))
             | ((cp >= 0xF900) & (cp <= 0xFAFF)) | ((cp >= 0x20000) & (cp <= 0x3134F)))
    return np.where(hanzi, cp, np.where(cp == 0, EDGE, OTHER))


def context_keys(codes: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """(M, 1 + len(OFFSETS)) int64 feature keys of the characters at ``pos`` of a code stream: the target alone
    (its bias), then the target with each neighbour, ``target << 24 | slot << 21 | neighbour`` (code points < 2**21).
    A neighbour beyond the stream or beyond an EDGE reads EDGE."""
    n = len(codes)
    target = codes[pos]
    cols = [target << 24]
    near: dict[int, np.ndarray] = {}
    for d in sorted(OFFSETS, key=abs):
        j = pos + d
        c = np.where((j >= 0) & (j < n), codes[np.clip(j, 0, n - 1)], EDGE)
        if abs(d) > 1:
            c = np.where(near[d // abs(d)] == EDGE, EDGE, c)
        near[d] = c
    cols += [target << 24 | (slot + 1) << 21 | near[d] for slot, d in enumerate(OFFSETS)]
    return np.stack(cols, axis=1)


class ContextReader:
    """Readings in context, distilled from g2pM (a BiLSTM that reads 97.4 % of CPP right) by
    ``pipelines/distill_pinyin.py``: the teacher read a corpus, and what it said is kept in two small parts.

    - a word table: the reading the teacher gave a word nearly every time it met it (还有 → hai2 you3; a single
      character too when it almost never changes: 的 → de5, 了 → le5); it keeps the teacher's slips where the
      tags did not reach (长着 → chang2 zhe5);
    - a linear model per polyphonic character over its neighbours (±1, ±2 characters) for the rest: a single
      character such as 还 / 都 / 行 whose reading changes with its context, and words the table lacks and
      pypinyin's phrase dictionary does not cover (长得, 很长).

    Everything else reads as in `Readings`. Only weights and strings are stored (``npz``, no pickle); a batch of
    open positions is scored with one sorted-key lookup in numpy, so prep stays fast.
    """

    def __init__(self, chars: np.ndarray, candidates: list[list[str]], keys: np.ndarray, weights: np.ndarray,
                 table: dict[str, list[str]], sha256: str = "") -> None:
        self.chars = chars  # (C,) sorted code points of the characters the model reads
        self.candidates = candidates  # their readings: the model's classes, K at most
        self.keys, self.weights = keys, weights.astype(np.float32)  # (F,) sorted feature keys, (F, K)
        self.table = table
        self.valid = np.arange(weights.shape[1]) < np.array([len(c) for c in candidates])[:, None]  # (C, K)
        self.sha256 = sha256
        self._polyphonic = frozenset(chr(c) for c in chars.tolist())
        self._readings = Readings()

    @classmethod
    def load(cls, path: Path = CONTEXT_FILE) -> ContextReader:
        with np.load(path, allow_pickle=False) as z:
            lines = bytes(z["table"]).decode("utf-8").splitlines()
            return cls(z["chars"], [str(c).split() for c in z["candidates"]], z["keys"], z["weights"],
                       {w: r.split() for w, r in (line.split("\t") for line in lines)}, sha256_file(path))

    def word(self, word: str) -> tuple[list[str], list[bool]]:
        """Syllables of ``word`` as `Readings` gives them, or the table's; and which characters are left open for
        the context model: the polyphonic ones of a word of plain hanzi (one token per character) that neither the
        table nor a dictionary phrase settles."""
        fixed, no = self.table.get(word), [False] * len(word)
        if (fixed is None and self._polyphonic.isdisjoint(word)) or self._readings.in_phrase(word):
            return self._readings(word), no  # a dictionary phrase (了解, 头发, 为什么) beats what the teacher said
        if fixed is not None:
            return fixed, no
        return self._readings.alone(word), [c in self._polyphonic for c in word] if BASIC_HANZI.fullmatch(word) else no

    def choose(self, codes: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row in ``chars``, candidate index) of the characters at ``pos`` of a code stream (`context_codes`)."""
        keys = context_keys(codes, pos)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        w = self.weights[at] * (self.keys[at] == keys)[..., None]  # (M, features, K); absent features weigh 0
        rows = np.searchsorted(self.chars, codes[pos])
        scores = np.where(self.valid[rows], w.sum(axis=1), -np.inf)
        return rows, scores.argmax(axis=1)

    def sentence(self, words: list[str]) -> list[str]:
        """Syllables of one sentence given as its words (what prep writes for it, one syllable per character)."""
        out, open_ = [], []
        for w in words:
            r, o = self.word(w)
            out += r
            open_ += o
        pos = np.flatnonzero(open_)
        if len(pos):
            rows, pick = self.choose(context_codes("".join(words)), pos)
            for p, r, k in zip(pos.tolist(), rows.tolist(), pick.tolist()):
                out[p] = self.candidates[r][k]
        return out
