"""Word segmentation with jieba's algorithm and dictionary, so that masking can cover whole words.

Two backends give the same words: ``jieba`` (the pure-Python reference) and ``rjieba`` (the same
algorithm and dictionary in Rust, ~12× faster). Both are loaded lazily, once per worker process,
so a `Segmenter` pickles cheaply to workers. User dictionaries use jieba's format:
``word [freq] [tag]`` per line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


@dataclass
class SegmentConfig:
    """jieba settings."""

    backend: Literal["rjieba", "jieba"] = "rjieba"
    """rjieba (Rust, fast) or jieba (pure Python, the reference); they agree word for word."""
    hmm: bool = True
    """Use jieba's HMM to join characters of words missing from the dictionary."""
    user_dicts: list[str] = field(default_factory=list)
    """jieba-format user dictionaries (``word [freq] [tag]`` per line), loaded in order."""


# jieba splits a block of ASCII it does not know with these rules (jieba.finalseg.re_skip with the HMM,
# runs of [a-zA-Z0-9] without it); rjieba keeps such blocks whole ("1.3nm"), so its ASCII words are
# re-split the same way and the backends agree word for word.
_ASCII_ALNUM = re.compile(r"[a-zA-Z0-9]")
_JIEBA_ASCII = {True: re.compile(r"([a-zA-Z0-9]+(?:\.\d+)?%?)"), False: re.compile(r"([a-zA-Z0-9]+|.)", re.S)}


def _as_jieba(words: list[str], hmm: bool) -> list[str]:
    split = _JIEBA_ASCII[hmm].split
    out: list[str] = []
    for w in words:
        if len(w) > 1 and w.isascii() and not w.isspace():
            out.extend(x for x in split(w) if x)
        else:
            out.append(w)
    return out


def read_user_dict(path: str | Path) -> list[tuple[str, int | None, str | None]]:
    """Entries of a jieba user dictionary; a malformed frequency is an error naming file and line."""
    entries = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8-sig").splitlines(), 1):
        parts = line.strip().split()
        if not parts:
            continue
        word, *rest = parts
        freq = int(rest.pop(0)) if rest and rest[0].isdigit() else None
        tag = rest.pop(0) if rest else None
        if rest:
            raise ValueError(f"{path}:{lineno}: expected 'word [freq] [tag]', got {line!r}")
        entries.append((word, freq, tag))
    return entries


class Segmenter:
    def __init__(self, cfg: SegmentConfig):
        self.cfg = cfg
        self._cut: Callable[[str], list[str]] | None = None

    def cut(self, text: str) -> list[str]:
        if self._cut is None:
            self._cut = self._load()
        return self._cut(text)

    def _load(self) -> Callable[[str], list[str]]:
        entries = [e for d in self.cfg.user_dicts for e in read_user_dict(d)]
        hmm = self.cfg.hmm
        if self.cfg.backend == "jieba":
            import logging

            import jieba

            jieba.setLogLevel(logging.WARNING)
            tk = jieba.Tokenizer()
            for word, freq, tag in entries:
                tk.add_word(word, freq, tag)
            return lambda text: tk.lcut(text, HMM=hmm)
        import rjieba

        jb = rjieba.Jieba()
        for word, freq, tag in entries:
            jb.add_word(word, freq, tag)
        def cut(text: str) -> list[str]:
            words = jb.cut(text, hmm)
            return _as_jieba(words, hmm) if _ASCII_ALNUM.search(text) else words

        return cut

    def __getstate__(self) -> dict:
        return {"cfg": self.cfg, "_cut": None}  # the loaded backend stays behind: each worker loads its own
