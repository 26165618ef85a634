"""Pinyin: a vocabulary of toned syllables and the reading of each character in its word.

Syllables are written the TONE3 way (``zhong1``), neutral tone explicit (``de5``), ``ü`` as ``v``
(``lv4``) and ``ê`` as ``eh`` so every syllable is lowercase a–z plus one tone digit. Heteronyms are
resolved by pypinyin's phrase dictionary from the jieba word a character sits in: 银行 → hang2,
行走 → xing2.
"""

from __future__ import annotations

from pathlib import Path

from zhbert.data.files import tokens_sha256, write_text

FILENAME = "pinyin_vocab.txt"


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
        path = Path(folder) / FILENAME
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; build it with `zhbert vocab pinyin --out {folder}`")
        return cls(path.read_text(encoding="utf-8").splitlines())

    def save(self, folder: str | Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        write_text(Path(folder) / FILENAME, "\n".join(self.entries) + "\n")

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

    def _phrase(self, word: str) -> list[str] | None:
        phrase = self._phrases.get(word)
        return [self._convert(p[0]) for p in phrase] if phrase and len(phrase) == len(word) else None

    def __call__(self, word: str) -> list[str]:
        if len(word) == 1:
            return [self._char(word)]
        whole = self._phrase(word)
        if whole is not None:
            return whole
        phrases, n = self._phrases, len(word)
        if not any(word[i:j] in phrases for i in range(n - 1) for j in range(i + 2, n + 1)):
            # no piece pypinyin's segmenter could cut is a dictionary phrase: every char reads alone
            return [self._char(c) for c in word]
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
