"""Character-level text rules shared by every step: what a hanzi is, normalisation, sentence ends."""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

# CJK Unified Ideographs and their extensions (A, B–G, compatibility) plus 〇, which has a reading.
HANZI_RANGES = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
HANZI = re.compile(f"[{HANZI_RANGES}]")
HANZI_RUN = re.compile(f"[{HANZI_RANGES}]+")
# Words made only of these are split into one token per char by BERT's tokenizer, unchanged.
BASIC_HANZI = re.compile("[\u4e00-\u9fff]+")


def is_hanzi(ch: str) -> bool:
    return HANZI.fullmatch(ch) is not None


def hanzi_count(text: str) -> int:
    return sum(len(m) for m in HANZI_RUN.findall(text))


@dataclass
class NormalizeConfig:
    """How raw text is cleaned before anything else sees it."""

    fullwidth_to_halfwidth: bool = True
    """Full-width ASCII forms (U+FF01–FF5E: Ａ１，！) and the ideographic space → their ASCII twins."""
    remove_control: bool = True
    """Drop control (Cc) and format (Cf: zero-width space/joiner, BOM, bidi marks) characters."""
    collapse_whitespace: bool = True
    """Runs of whitespace (newlines included) → one space; leading and trailing whitespace removed."""
    nfc: bool = True
    """Unicode NFC: composes accents and maps CJK compatibility ideographs to unified ones."""
    t2s: bool = False
    """Traditional → simplified Chinese with OpenCC (t2s)."""


@functools.cache
def _invisible_chars() -> str:
    """Every control and format code point (computed once per process). They live in planes 0, 1 and
    14 only (planes 2–3 are ideographs, 15–16 private use), so only those are scanned."""
    keep = {"\t", "\n", "\r"}  # whitespace: collapsed, not deleted, so words stay apart
    planes = (*range(0x20000), *range(0xE0000, 0xF0000))
    return "".join(chr(c) for c in planes
                   if unicodedata.category(chr(c)) in ("Cc", "Cf") and chr(c) not in keep)


@functools.cache
def _whitespace_chars() -> str:
    """Every code point ``str.isspace`` (and so the ``\\s`` of ``re``) calls whitespace; all lie in plane 0."""
    return "".join(chr(c) for c in range(0x10000) if chr(c).isspace())


@functools.cache
def _translation(fullwidth: bool, remove_control: bool, aligned: bool = False,
                 collapse_whitespace: bool = False) -> dict[int, int | None]:
    """The per-character rules as a ``str.translate`` table. ``aligned``: the length-keeping variant, where a
    deleted character becomes a space, and so does every whitespace character with ``collapse_whitespace``."""
    table: dict[int, int | None] = {}
    if fullwidth:
        table.update({c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)})
        table[0x3000] = 0x20
    if remove_control:
        table.update(dict.fromkeys(map(ord, _invisible_chars()), 0x20 if aligned else None))
    if aligned and collapse_whitespace:
        table.update(dict.fromkeys(map(ord, _whitespace_chars()), 0x20))
    return table


_WHITESPACE = re.compile(r"\s+")


class Normalizer:
    """One callable that applies NormalizeConfig; cheap to pickle (OpenCC is opened lazily per process)."""

    def __init__(self, cfg: NormalizeConfig):
        self.cfg = cfg
        self._opencc = None

    def __call__(self, text: str) -> str:
        cfg = self.cfg
        if cfg.nfc and not unicodedata.is_normalized("NFC", text):
            text = unicodedata.normalize("NFC", text)
        if cfg.fullwidth_to_halfwidth or cfg.remove_control:
            text = text.translate(_translation(cfg.fullwidth_to_halfwidth, cfg.remove_control))
        if cfg.t2s:
            text = self._t2s(text)
        if cfg.collapse_whitespace:
            text = _WHITESPACE.sub(" ", text).strip()
        return text

    def aligned(self, text: str) -> str:
        """The same rules, keeping the length: character i of the result comes from character i of ``text``, so
        offsets found in the result point into ``text`` (fine-tuning's entity spans, answers and predictions stay
        in the original string). Where ``__call__`` deletes a character (control, format) or collapses
        whitespace, this writes a space: no token, a word boundary. NFC applies per character (a compatibility
        ideograph → its unified twin; a combining accent stays apart, and the BERT tokenizer strips it anyway);
        t2s converts the whole text when OpenCC keeps its length (phrases: 乾隆 stays), else char by char."""
        cfg = self.cfg
        if cfg.nfc and not unicodedata.is_normalized("NFC", text):
            text = "".join(n if len(n := unicodedata.normalize("NFC", c)) == 1 else c for c in text)
        text = text.translate(_translation(cfg.fullwidth_to_halfwidth, cfg.remove_control, True,
                                           cfg.collapse_whitespace))
        if cfg.t2s:
            whole = self._t2s(text)
            text = whole if len(whole) == len(text) else "".join(
                s if len(s := self._t2s(c)) == 1 else c for c in text)
        return text

    def _t2s(self, text: str) -> str:
        if self._opencc is None:
            import opencc

            self._opencc = opencc.OpenCC("t2s")
        return self._opencc.convert(text)

    def __getstate__(self) -> dict:
        return {"cfg": self.cfg, "_opencc": None}


# A sentence ends after 。！？!?… (runs of them), or a Latin full stop followed by whitespace, and takes
# any closing quotes or brackets with it: 他说：“好。”|然后……
_SENTENCE_END = re.compile(r"(?:[。！？!?…]+|\.(?=\s))[”’\"'」』）)\]》]*")


def split_sentences(text: str) -> list[str]:
    """Split on Chinese and Latin sentence ends; no text is lost (the pieces join back to ``text``
    up to the whitespace around the cuts)."""
    return [text[a:b] for a, b in sentence_spans(text)]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) in ``text`` of each piece `split_sentences` gives (whitespace around the cuts left out)."""
    out, start = [], 0
    for end in [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]:
        piece = text[start:end]
        if piece.strip():
            a = start + len(piece) - len(piece.lstrip())
            out.append((a, a + len(piece.strip())))
        start = end
    return out
