"""Robustness sets: a task's scored split (test, or dev where test has no labels) with a share of its hanzi
replaced by a character a writer or an input method confuses with it — a homophone (pycorrector's
``same_pinyin.txt``, any tone) or a look-alike (its ``same_stroke.txt``) — drawn per text from a seed
(zhbert/data/corrupt.py). Texts keep their length, so labels, entity spans and answer positions stay; an answer's
text is read again from the perturbed context. ``zhbert finetune`` scores each set beside the clean split
(``FinetuneConfig.robustness``), and the comparison report shows the drop.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

from zhbert.data.corrupt import CorruptConfig, corrupt
from zhbert.data.spelling import read_spelling_data
from zhbert.finetune.tasks import Example

PERTURBATIONS = ("homophone", "lookalike")


@cache
def confusion_set(name: str) -> dict[str, set[str]]:
    """The confusion set a perturbation draws from (pycorrector 1.1.4's, downloaded once and checked)."""
    if name not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {name!r}; known: {', '.join(PERTURBATIONS)}")
    data = read_spelling_data()
    return data.homophones if name == "homophone" else data.same_stroke.data


def perturb(examples: list[Example], name: str, share: float, seed: int = 0) -> tuple[list[Example], dict]:
    """``examples`` with ``share`` of the hanzi of every text (and text pair) replaced from the ``name`` set, and
    the record of what was done (rule, set, counts)."""
    texts = [t for ex in examples for t in (ex.text, ex.text_pair) if t is not None]
    done, record = corrupt(texts, confusion_set(name), f"pycorrector 1.1.4 {name}",
                           CorruptConfig(share=share, at_least_one=False, seed=seed))
    new = iter(c.text for c in done)
    out = []
    for ex in examples:
        text = next(new)
        pair = next(new) if ex.text_pair is not None else None
        answers = None if ex.answers is None else [(s, text[s:s + len(a)] if s >= 0 else a) for s, a in ex.answers]
        out.append(replace(ex, text=text, text_pair=pair, answers=answers))
    return out, record
