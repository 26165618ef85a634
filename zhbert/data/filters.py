"""Document filters: each check returns the reason a normalised document is dropped, or None."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from zhbert.data.readers import ReadConfig, read_documents
from zhbert.data.tally import Tally
from zhbert.data.text import Normalizer, hanzi_count, split_sentences

TEXT_KEY_BYTES = 12


@dataclass
class FilterConfig:
    """Which documents are dropped (every drop is counted by reason in the manifest)."""

    min_chars: int = 2
    """Fewer non-space characters than this: dropped as too_short."""
    min_hanzi_ratio: float = 0.3
    """Share of hanzi among non-space characters below this: dropped as too_few_hanzi."""
    dedup: bool = True
    """Drop exact duplicates (after normalisation) of an earlier document."""
    exclude: list[str] = field(default_factory=list)
    """Files of evaluation texts (txt lines or jsonl "text"); a document equal to one, or holding one as
    a sentence, is dropped as excluded so evaluation text never enters pretraining data."""


class DocumentFilter:
    """Stateful (it remembers what it has seen for dedup): one instance per pass over the data."""

    def __init__(self, cfg: FilterConfig, excluded: Iterable[str] = ()):
        self.cfg = cfg
        self.excluded = frozenset(excluded)
        self._seen: set[bytes] = set()

    def reason(self, text: str) -> str | None:
        if not text:
            return "empty"
        chars = len(text) - text.count(" ")
        if chars < self.cfg.min_chars:
            return "too_short"
        if hanzi_count(text) < self.cfg.min_hanzi_ratio * chars:
            return "too_few_hanzi"
        if self.excluded and (text in self.excluded or not self.excluded.isdisjoint(split_sentences(text))):
            return "excluded"
        if self.cfg.dedup:
            key = text_key(text)
            if key in self._seen:
                return "duplicate"
            self._seen.add(key)
        return None


def text_key(text: str) -> bytes:
    """What exact deduplication compares: 12 bytes of blake2b of the normalised text."""
    return hashlib.blake2b(text.encode(), digest_size=TEXT_KEY_BYTES).digest()


def read_exclusions(paths: list[str] | list[Path], normalize: Normalizer) -> set[str]:
    """Normalised evaluation texts: one per line of .txt files, or the "text" of .jsonl records."""
    texts: set[str] = set()
    for path in paths:
        for doc in read_documents(Path(path), ReadConfig(), Tally()):
            if text := normalize(doc["text"]):
                texts.add(text)
    return texts
