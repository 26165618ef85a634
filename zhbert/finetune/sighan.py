"""Chinese spelling-check metrics as the SIGHAN-based literature reports them: detection and correction
precision / recall / F1, at the sentence level and at the character level.

Definitions: FASPell's measure (Hong et al. 2019, iqiyi/FASPell ``faspell.py``) as pycorrector 1.1.4 ships it,
``compute_corrector_prf_faspell(strict=True)`` in ``pycorrector/macbert/evaluate_util.py``; its sentence level is
also the one of ReaLiSe's ``sent_metric_detect`` / ``sent_metric_correct``. Each example is a source (wrong)
sentence, its gold (right) sentence and the predicted sentence, all of one length. Per sentence:
the *errors* are the positions where source ≠ gold, the *changes* the positions where prediction ≠ source.

Sentence level (one count per sentence):

- detection TP: the changes are exactly the errors, and there is at least one error;
- correction TP: there is at least one change and the prediction equals the gold sentence (so the changes are
  exactly the errors, each with the right character);
- FP = sentences with a change − TP (a change to a correct sentence, or a wrong detection or correction of an
  erroneous one); FN = sentences with an error − TP. Precision is thus over the sentences the model changed,
  recall over the sentences with errors.

Character level (one count per position):

- detection TP: a change at an error; correction TP: a change to the gold character (necessarily at an error);
- FP = changes − TP; FN = errors − TP. Precision is over the changed characters, recall over the errors.

Precision, recall or F1 with a zero denominator is 0. The SIGHAN 2015 bake-off's own tool differs at the sentence
level: its false positives are only the correct sentences that were changed (Tseng et al. 2015).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def scores(self) -> dict[str, float]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
                "tp": self.tp, "fp": self.fp, "fn": self.fn}


LEVELS = ("sentence_detection", "sentence_correction", "char_detection", "char_correction")


def sighan_scores(sources: Sequence[str], golds: Sequence[str], predictions: Sequence[str]) -> dict:
    """``{level: {precision, recall, f1, tp, fp, fn}}`` for the four ``LEVELS``, plus the sentence count and the
    number of sentences with errors."""
    if not len(sources) == len(golds) == len(predictions):
        raise ValueError(f"{len(sources)} sources, {len(golds)} gold and {len(predictions)} predicted sentences")
    counts = {level: Counts() for level in LEVELS}
    with_errors = 0
    for n, (src, gold, pred) in enumerate(zip(sources, golds, predictions)):
        if not len(src) == len(gold) == len(pred):
            raise ValueError(f"sentence {n}: lengths {len(src)} (source), {len(gold)} (gold), {len(pred)} "
                             f"(prediction) differ; spelling check scores same-length sentences")
        errors = {i for i, (s, g) in enumerate(zip(src, gold)) if s != g}
        changes = {i for i, (s, p) in enumerate(zip(src, pred)) if s != p}
        right = {i for i in changes if pred[i] == gold[i]}
        with_errors += bool(errors)
        sentence = {"sentence_detection": bool(errors) and changes == errors,
                    "sentence_correction": bool(changes) and pred == gold}
        for level, hit in sentence.items():
            counts[level].tp += hit
            counts[level].fp += bool(changes) and not hit
            counts[level].fn += bool(errors) and not hit
        for level, hits in (("char_detection", len(changes & errors)), ("char_correction", len(right))):
            counts[level].tp += hits
            counts[level].fp += len(changes) - hits
            counts[level].fn += len(errors) - hits
    return {level: c.scores() for level, c in counts.items()} | {"sentences": len(sources),
                                                                 "sentences_with_errors": with_errors}
