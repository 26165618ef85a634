"""Confusion sets: the characters a writer or an input method puts in place of another.

Built from zhbert's own tables, for spelling-correction data and homophone / look-alike perturbations:

- homophones from pypinyin's character dictionary (every reading of a heteronym counts): the characters that
  share a toned syllable, and those that share only the syllable, with another tone (pycorrector's
  ``same_pinyin.txt`` has the same two columns);
- look-alikes from the glyph table: the nearest glyph images by cosine over all fonts, so a character's
  neighbours are the ones drawn with most ink in the same places (己 已 巳).

``benchmarks/confusion_sets.py`` compares both with pycorrector's hand-made sets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import numpy as np

from zhbert.data.pinyin import Readings
from zhbert.data.text import is_hanzi


def homophones(chars: Iterable[str]) -> dict[str, tuple[set[str], set[str]]]:
    """``char → (same syllable and tone, same syllable with another tone only)``, among ``chars``."""
    chars = list(dict.fromkeys(chars))
    toned, toneless = defaultdict(set), defaultdict(set)
    every = Readings().every  # spelled as the pinyin vocab spells them (hang2)
    read = {c: every(c) for c in chars}
    for c, rs in read.items():
        for r in rs:
            toned[r].add(c)
            toneless[r.rstrip("12345")].add(c)
    out = {}
    for c, rs in read.items():
        same = set().union(*(toned[r] for r in rs)) - {c} if rs else set()
        other = set().union(*(toneless[r.rstrip("12345")] for r in rs)) - same - {c} if rs else set()
        out[c] = (same, other)
    return out


def look_alikes(tokens: list[str], pixels: np.ndarray, k: int = 8, block: int = 2048) -> dict[str, list[str]]:
    """``char → its k nearest hanzi`` by cosine of their glyph images (``pixels``: the glyph table, (V, fonts, S,
    S), row i drawing ``tokens[i]``), nearest first, among the table's single hanzi."""
    rows = [i for i, t in enumerate(tokens) if len(t) == 1 and is_hanzi(t)]
    x = pixels[rows].reshape(len(rows), -1).astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)  # a blank glyph stays all zero
    out: dict[str, list[str]] = {}
    for s in range(0, len(rows), block):  # (block, n) similarities at a time
        sim = x[s:s + block] @ x.T
        sim[np.arange(len(sim)), np.arange(s, s + len(sim))] = -np.inf  # not itself
        top = np.argpartition(-sim, k, axis=1)[:, :k]
        order = np.take_along_axis(sim, top, axis=1).argsort(axis=1)[:, ::-1]
        for i, near in enumerate(np.take_along_axis(top, order, axis=1)):
            out[tokens[rows[s + i]]] = [tokens[rows[j]] for j in near]
    return out


def merged(*sets: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """One confusion set out of several (homophones and look-alikes, say): char → the union of its candidates."""
    out: dict[str, set[str]] = defaultdict(set)
    for s in sets:
        for c, candidates in s.items():
            out[c] |= set(candidates)
    return dict(out)
