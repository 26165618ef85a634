"""Metrics as CLUE scores them: accuracy; entity-level micro precision / recall / F1 (an entity counts
only if its start, end and type all match); CMRC2018 exact match and F1 as its official evaluation script
computes them (see ``span_em_f1``)."""

from __future__ import annotations

import re
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


# The official script's punctuation list (sp_char), one character each. It also lists "……", two characters, which
# never equals the one character it is compared with: "…" is not punctuation there, and is not here.
_CMRC_PUNCT = frozenset("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』")

# nltk.word_tokenize (its Treebank rules, as in NLTK 3.3, which the script ran with) on one line of text: these
# substitutions in order, the text padded with a space at each end before the closing-quote rules, then a split on
# whitespace. Words and numbers stay whole (3.5, 1,000), punctuation and clitics come off (50 %, it 's, ca n't,
# can not), quotes become `` and ''. Not reproduced: Punkt's sentence split, which only matters for a period inside
# a run of non-CJK text ("12pm. Those"); everything else agreed with NLTK 3.3 on 44,000 strings.
_OPENING = [(re.compile(p), r) for p, r in (
    (r"([«“‘„]|`+)", r" \1 "), (r'^"', "``"), (r"(``)", r" \1 "), (r"([ (\[{<])(\"|'{2})", r"\1 `` "),
    (r"([^.])(\.)([\]\)}>\"'»”’ ]*)\s*$", r"\1 \2 \3 "),  # the final period
    (r"([:,])([^\d])", r" \1 \2"), (r"([:,])$", r" \1 "), (r"\.\.\.", " ... "), (r"[;@#$%&?!]", r" \g<0> "),
    (r"([^'])' ", r"\1 ' "), (r"[\]\[(){}<>]", r" \g<0> "), (r"--", " -- "),
)]
_CLOSING = [(re.compile(p), r) for p, r in (
    (r"([»”’])", r" \1 "), (r'"', " '' "), (r"(\S)('')", r"\1 \2 "),
    (r"([^' ])('[sS]|'[mM]|'[dD]|') ", r"\1 \2 "), (r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", r"\1 \2 "),
    *((rf"(?i)\b{p}", r" \1 \2 ") for p in (r"(can)(not)\b", r"(d)('ye)\b", r"(gim)(me)\b", r"(gon)(na)\b",
                                           r"(got)(ta)\b", r"(lem)(me)\b", r"(mor)('n)\b", r"(wan)(na)\s")),
    *((rf"(?i) {p}", r" \1 \2 ") for p in (r"('t)(is)\b", r"('t)(was)\b")),
)]


def _word_tokenize(text: str) -> list[str]:
    for pattern, repl in _OPENING:
        text = pattern.sub(repl, text)
    text = f" {text} "
    for pattern, repl in _CLOSING:
        text = pattern.sub(repl, text)
    return text.split()


def _segments(text: str) -> list[str]:
    """The script's ``mixed_segmentation(text, rm_punc=True)``: lower case, stripped, punctuation dropped (without
    ending a run), each CJK character [\\u4e00-\\u9fa5] a segment and every run of other characters word-tokenised."""
    out: list[str] = []
    run = ""
    for ch in text.lower().strip():
        if ch in _CMRC_PUNCT:
            continue
        if "\u4e00" <= ch <= "\u9fa5":
            out += _word_tokenize(run) + [ch]
            run = ""
        else:
            run += ch
    return out + _word_tokenize(run)


def _without_punct(text: str) -> str:
    """The script's ``remove_punctuation``: lower case, stripped, punctuation dropped; spaces inside stay."""
    return "".join(c for c in text.lower().strip() if c not in _CMRC_PUNCT)


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common contiguous run of segments."""
    best, prev = 0, [0] * (len(b) + 1)
    for ca in a:
        cur = [0] * (len(b) + 1)
        for j, cb in enumerate(b, 1):
            if ca == cb:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def _f1(pred: list[str], ref: list[str]) -> float:
    lcs = _lcs(pred, ref)
    return 2 * lcs / (len(pred) + len(ref)) if lcs else 0.0  # = 2PR / (P + R) with P = lcs/|pred|, R = lcs/|ref|


def span_em_f1(pred: Sequence[str], gold: Sequence[list[str]]) -> dict[str, float]:
    """CMRC2018 as its official evaluation script scores it (github.com/ymcui/cmrc2018,
    squad-style-data/cmrc2018_evaluate.py, v5): per question the best EM and F1 over its answers, averaged; F1 is
    the main score. EM compares the texts without the script's punctuation list; F1 is the longest common run of
    segments (each CJK character, each word or number of other text), 0 when nothing is shared, so two empty
    strings score EM 1 and F1 0, 3.5亿 and 35亿 are different numbers, and a Latin word counts once, not per letter."""
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predictions for {len(gold)} questions")
    em = f1 = 0.0
    for p, answers in zip(pred, gold):
        em += max((float(_without_punct(p) == _without_punct(a)) for a in answers), default=0.0)
        f1 += max((_f1(_segments(p), _segments(a)) for a in answers), default=0.0)
    n = max(len(gold), 1)
    return {"f1": f1 / n, "em": em / n, "n": len(gold)}
