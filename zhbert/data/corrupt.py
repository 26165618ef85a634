"""Synthetic spelling errors: hanzi replaced by a confusable character, for correction training and robustness sets.

A share of each sentence's hanzi (10 % by default, rounded, and at least one where the sentence has a hanzi that
can be replaced) is replaced by a character of its confusion set (pycorrector's, or zhbert's homophones and
look-alikes from zhbert.data.confusion). Only single characters change, so the text keeps its length and every
label or span offset stays valid. Each sentence draws from its own generator, seeded by the seed and its text:
the same sentence is corrupted the same way whatever comes before it, and whatever ``PYTHONHASHSEED`` is.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from zhbert.data.text import is_hanzi


@dataclass(frozen=True)
class CorruptConfig:
    share: float = 0.10
    """Share of a sentence's hanzi to replace, rounded half up."""
    at_least_one: bool = True
    """Replace one hanzi in a sentence whose share rounds to none (correction training wants an error in each)."""
    seed: int = 0


@dataclass(frozen=True)
class Corrupted:
    text: str
    positions: list[int]
    """The indices of the replaced characters, ascending."""


def candidates_of(confusion: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """``char → its confusable hanzi, sorted`` (sorted so that a draw never depends on set order), for the
    hanzi that have any."""
    out = {c: sorted({h for h in near if h != c and is_hanzi(h)}) for c, near in confusion.items() if is_hanzi(c)}
    return {c: near for c, near in out.items() if near}


def corrupt_one(text: str, candidates: Mapping[str, list[str]], config: CorruptConfig, counts: Counter) -> Corrupted:
    """One sentence corrupted; ``counts`` gains its hanzi, replacements wanted and made, and hanzi without a
    candidate."""
    rng = random.Random(f"{config.seed}\t{text}")
    hanzi = [i for i, c in enumerate(text) if is_hanzi(c)]
    able = [i for i in hanzi if text[i] in candidates]
    want = int(config.share * len(hanzi) + 0.5)
    if config.at_least_one and able:
        want = max(want, 1)
    positions = sorted(rng.sample(able, min(want, len(able))))
    chars = list(text)
    for i in positions:
        chars[i] = rng.choice(candidates[text[i]])
    counts.update(sentences=1, hanzi=len(hanzi), no_candidate=len(hanzi) - len(able), wanted=want,
                  replaced=len(positions), short=want - len(positions), sentences_changed=int(bool(positions)))
    return Corrupted("".join(chars), positions)


def corrupt(texts: Iterable[str], confusion: Mapping[str, Iterable[str]], name: str,
            config: CorruptConfig = CorruptConfig()) -> tuple[list[Corrupted], dict]:
    """Every text corrupted, and the record a task manifest stores: the rule, its settings, which confusion sets
    (``name`` and a hash of their content) and the counts (``short``: replacements wanted beyond the hanzi that
    have a candidate; ``no_candidate``: hanzi whose confusion set is empty)."""
    candidates = candidates_of(confusion)
    counts: Counter = Counter()
    out = [corrupt_one(t, candidates, config, counts) for t in texts]
    digest = hashlib.sha256("\n".join(f"{c}\t{''.join(v)}" for c, v in sorted(candidates.items())).encode())
    record = {"rule": "replace a share of each sentence's hanzi by a confusable hanzi (same length out)",
              **asdict(config), "confusion": name, "confusion_sha256": digest.hexdigest(),
              "confusion_keys": len(candidates),
              "counts": {k: counts[k] for k in ("sentences", "sentences_changed", "hanzi", "wanted", "replaced",
                                                "short", "no_candidate")}}
    return out, record
