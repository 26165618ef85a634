"""Metrics as CLUE scores them: accuracy; entity-level micro precision / recall / F1 (an entity counts
only if its start, end and type all match); CMRC2018 exact match and F1 (characters, punctuation and
spaces removed, F1 from the longest common substring, best over the reference answers)."""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Sequence

from zhbert.finetune.tasks import Entity


def accuracy(pred: Sequence[str], gold: Sequence[str]) -> dict[str, float]:
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predictions for {len(gold)} examples")
    return {"accuracy": sum(p == g for p, g in zip(pred, gold)) / max(len(gold), 1), "n": len(gold)}


def entity_f1(pred: Sequence[list[Entity]], gold: Sequence[list[Entity]]) -> dict[str, float]:
    """Micro P / R / F1 over all (example, start, end, type) entities; per-type F1 too."""
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predictions for {len(gold)} examples")
    p_set = {(i, *e) for i, es in enumerate(pred) for e in es}
    g_set = {(i, *e) for i, es in enumerate(gold) for e in es}
    out = _prf(len(p_set & g_set), len(p_set), len(g_set))
    for t in sorted({e[3] for e in g_set | p_set}):
        pt, gt = {e for e in p_set if e[3] == t}, {e for e in g_set if e[3] == t}
        out[f"f1_{t}"] = _prf(len(pt & gt), len(pt), len(gt))["f1"]
    return out | {"n": len(gold), "gold_entities": len(g_set), "pred_entities": len(p_set)}


def _prf(hit: int, n_pred: int, n_gold: int) -> dict[str, float]:
    p = hit / n_pred if n_pred else 0.0
    r = hit / n_gold if n_gold else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


_PUNCT = set(string.punctuation) | set("－：_*^/\\~`+=，。：？！“”；’《》……·、「」（）-～‘『』")


def _clean(text: str) -> str:
    """CMRC2018's normalisation: lower case, no punctuation, no whitespace."""
    return "".join(c for c in text.lower() if c not in _PUNCT and not c.isspace()
                   and not unicodedata.category(c).startswith("P"))


def _lcs(a: str, b: str) -> int:
    """Length of the longest common substring."""
    best, prev = 0, [0] * (len(b) + 1)
    for ca in a:
        cur = [0] * (len(b) + 1)
        for j, cb in enumerate(b, 1):
            if ca == cb:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def _f1(pred: str, ref: str) -> float:
    if pred == ref:
        return 1.0
    lcs = _lcs(pred, ref)
    return 2 * lcs / (len(pred) + len(ref)) if lcs else 0.0  # = 2PR / (P + R) with P = lcs/|pred|, R = lcs/|ref|


def span_em_f1(pred: Sequence[str], gold: Sequence[list[str]]) -> dict[str, float]:
    """CMRC2018: per question the best EM and F1 over its answers, averaged; F1 is the main score."""
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predictions for {len(gold)} questions")
    em = f1 = 0.0
    for p, answers in zip(pred, gold):
        pc, refs = _clean(p), [_clean(a) for a in answers]
        em += max((float(pc == a) for a in refs), default=0.0)
        f1 += max((_f1(pc, a) for a in refs), default=0.0)
    n = max(len(gold), 1)
    return {"f1": f1 / n, "em": em / n, "n": len(gold)}


MAIN = {"accuracy": "accuracy", "entity_f1": "f1", "em_f1": "f1"}
"""The key of each task metric's main number in its result dict."""
