"""Task kinds: what the ``kind`` of a task spec (configs/tasks/*.toml) means, each in one class.

A kind owns everything that differs between tasks of different shapes: the checks of its spec and of the examples
read, the head, how an example's tokens become model inputs and labels, how logits become predictions, the gold
answer, the score and the CLUE submission file. The fine-tuning loop (``run.py``) and the encoder of text
(``encode.py``) ask the kind and never branch on it, so a new kind is one class here, registered in ``KINDS``.

    classification  one label per text                 sequence head    accuracy
    pair            one label per text pair (A / B)    sequence head    accuracy
    token           entity tags per token (B- / I-)    token head       entity-level micro F1
    span            an answer span in a context        span head        CMRC2018 EM / F1
    csc             the right text of a misspelt one   MLM head         SIGHAN detection / correction P / R / F1
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from zhbert.config import ConfigError
from zhbert.files import atomic_write
from zhbert.finetune.metrics import accuracy, entity_f1, span_em_f1
from zhbert.finetune.sighan import LEVELS, sighan_scores
from zhbert.finetune.tasks import Entity, Example, TaskDataError, TaskSpec, tags_to_entities
from zhbert.model.heads import Pooling
from zhbert.model.model import (
    IGNORE,
    ZhBertForCorrection,
    ZhBertForSequenceClassification,
    ZhBertForSpanExtraction,
    ZhBertForTokenClassification,
)

if TYPE_CHECKING:
    from zhbert.finetune.features import Feature, TaskEncoder, TaskFeatures, Token
    from zhbert.finetune.run import FinetuneConfig


class Kind(ABC):
    """One task kind for one task spec; the methods below are what the loop and the encoder ask of it."""

    metric: ClassVar[str]
    """The ``TaskSpec.metric`` a task of this kind is scored with."""
    main: ClassVar[str]
    """The key of the main number in what ``score`` returns."""
    boundaries: ClassVar[bool] = False
    """Whether encoding counts entity / answer boundaries (and those that fall inside a token)."""
    robust: ClassVar[bool] = True
    """Whether a robustness set (the text with confusable characters, zhbert/finetune/robustness.py) keeps the
    answers right: not for spelling correction, whose answer is the text itself."""

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        self.check()
        if spec.metric != self.metric:
            raise ConfigError(f"task {spec.name!r}: a {spec.kind} task is scored with {self.metric}, not {spec.metric}")

    def check(self) -> None:
        """Check the fields of the spec this kind needs; a misfit is a ConfigError naming the task. An optional hook:
        a kind that needs no field checks nothing."""
        return None

    @abstractmethod
    def head(self, folder: Path, pooling: Pooling = "cls") -> nn.Module:
        """The export in ``folder`` with this kind's head. ``pooling`` (``FinetuneConfig.pooling``) is what a head
        with one answer per input reads; heads that label tokens or spans read every position and ignore it."""
        ...

    def admit(self, examples: list[Example], path: Path, split: str, counts: dict[str, Any]) -> list[Example]:
        """The examples of one split read from ``path`` that can be used, checked against the spec; what is dropped
        is counted into ``counts``."""
        return examples

    @abstractmethod
    def encode(self, encoder: TaskEncoder, n: int, ex: Example, enc: TaskFeatures) -> None:
        """Append the features of example ``n`` to ``enc`` (``encoder`` reads and wraps its texts)."""
        ...

    @abstractmethod
    def decode(self, cfg: FinetuneConfig, examples: list[Example], features: list[Feature],
               logits: list[torch.Tensor]) -> list:
        """One prediction per example from the logits of its features, as ``gold`` gives the answer."""
        ...

    @abstractmethod
    def gold(self, ex: Example) -> Any:
        """The example's answer as predictions.jsonl writes it; None when the split has no labels."""
        ...

    def reduce(self, logits: torch.Tensor) -> torch.Tensor:
        """What ``decode`` needs of a batch's logits, kept while the rest of the split is predicted."""
        return logits

    def labelled(self, examples: list[Example] | None) -> bool:
        return bool(examples) and all(self.gold(e) is not None for e in examples)

    @abstractmethod
    def score(self, examples: list[Example], pred: list) -> dict[str, float]:
        ...

    @abstractmethod
    def submission(self, examples: list[Example], pred: list) -> str:
        """The text of the CLUE submission file."""
        ...

    def submit(self, examples: list[Example], pred: list, path: Path) -> Path:
        """Write the submission file for the test split to ``path``."""
        with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write(self.submission(examples, pred))
        return path


def _json_lines(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _outside(path: Path, spec: TaskSpec, bad: dict[str, str], what: str, known: str) -> TaskDataError:
    """The error for labels outside the label set, each with where it is first."""
    return TaskDataError(f"{path}: {what} outside the label set of {spec.name!r}: "
                         f"{', '.join(f'{k!r} (first at {v})' for k, v in sorted(bad.items()))}; "
                         f"known {known}: {spec.labels}")


class Classification(Kind):
    """One label per text: the sequence head on [CLS]; inputs truncated to ``max_len``; accuracy; a submission
    line {"id", "label"} per test example, in order."""

    metric, main = "accuracy", "accuracy"

    def __init__(self, spec: TaskSpec) -> None:
        super().__init__(spec)
        self.label_ids = {label: i for i, label in enumerate(spec.labels)}

    def check(self) -> None:
        if len(self.spec.labels) < 2:
            raise ConfigError(f"task {self.spec.name!r}: a {self.spec.kind} task needs at least two labels")

    def head(self, folder: Path, pooling: Pooling = "cls") -> nn.Module:
        return ZhBertForSequenceClassification.from_pretrained(folder, num_labels=len(self.spec.labels),
                                                               pooling=pooling)

    def admit(self, examples: list[Example], path: Path, split: str, counts: dict[str, Any]) -> list[Example]:
        """Drops (and counts) the examples of ``drop_labels``; any other label outside the label set is an error."""
        spec = self.spec
        if spec.drop_labels:
            counts["dropped_labels"] = {d: sum(e.label == d for e in examples) for d in spec.drop_labels}
        examples = [e for e in examples if e.label not in spec.drop_labels]
        bad: dict[str, str] = {}
        for e in examples:
            if e.label is not None and e.label not in spec.labels:
                bad.setdefault(e.label, e.where)
        if bad:
            raise _outside(path, spec, bad, "labels", "labels")
        return examples

    def encode(self, encoder: TaskEncoder, n: int, ex: Example, enc: TaskFeatures) -> None:
        a = encoder.read(ex.text, enc)
        b = encoder.read(ex.text_pair, enc) if ex.text_pair is not None else None
        room = encoder.max_len - (3 if b is not None else 2)
        if len(a) + len(b or []) > room:
            enc.truncated += 1
            while len(a) + len(b or []) > room:  # longest first, as BERT's truncate_seq_pair
                if b is not None and len(b) > len(a):
                    b.pop()
                else:
                    a.pop()
        label = self.label_ids[ex.label] if ex.label is not None else None
        enc.features.append(encoder.feature(n, a, b, label, "a"))

    def decode(self, cfg: FinetuneConfig, examples: list[Example], features: list[Feature],
               logits: list[torch.Tensor]) -> list[str]:
        return [self.spec.labels[int(row.argmax())] for row in logits]

    def gold(self, ex: Example) -> str | None:
        return ex.label

    def score(self, examples: list[Example], pred: list) -> dict[str, float]:
        return accuracy(pred, [ex.label for ex in examples])

    def submission(self, examples: list[Example], pred: list) -> str:
        return _json_lines([{"id": ex.id, "label": p} for ex, p in zip(examples, pred)])


class Pair(Classification):
    """One label per text pair, sentence A in segment 0 and B in segment 1; truncated longest first."""

    def check(self) -> None:
        super().check()
        if not self.spec.text_pair:
            raise ConfigError(f"task {self.spec.name!r}: a pair task needs text_pair (the field of sentence B)")


class Tagging(Kind):
    """Entities as B- / I- tags per token (O elsewhere): the token head; the text cut into consecutive windows of
    ``max_len``, so no character is lost; entity-level micro F1; a CLUENER submission line {"id", "label": {type:
    {mention: [[start, end]]}}} per test example (end inclusive)."""

    metric, main, boundaries = "entity_f1", "f1", True

    def __init__(self, spec: TaskSpec) -> None:
        super().__init__(spec)
        self.tag_names = ["O", *(f"{p}-{t}" for t in spec.labels for p in ("B", "I"))]
        """The head's classes: O, then B-/I- per entity type."""
        self.tag_ids = {t: i for i, t in enumerate(self.tag_names)}

    def check(self) -> None:
        if not self.spec.labels:
            raise ConfigError(f"task {self.spec.name!r}: a token task needs labels (its entity types)")

    def head(self, folder: Path, pooling: Pooling = "cls") -> nn.Module:
        return ZhBertForTokenClassification.from_pretrained(folder, num_labels=len(self.tag_names))

    def admit(self, examples: list[Example], path: Path, split: str, counts: dict[str, Any]) -> list[Example]:
        """Entity types outside the label set are an error."""
        bad: dict[str, str] = {}
        for e in examples:
            for _, _, t in e.entities or []:
                if t not in self.spec.labels:
                    bad.setdefault(t, e.where)
        if bad:
            raise _outside(path, self.spec, bad, "entity types", "types")
        return examples

    def encode(self, encoder: TaskEncoder, n: int, ex: Example, enc: TaskFeatures) -> None:
        toks = encoder.read(ex.text, enc)
        tags = None
        if ex.entities is not None:
            tags = self.token_tags(toks, ex.entities, enc)
        room = encoder.max_len - 2
        enc.windowed += len(toks) > room
        for w in range(0, max(len(toks), 1), room):
            label = [IGNORE, *tags[w:w + room], IGNORE] if tags is not None else None
            enc.features.append(encoder.feature(n, toks[w:w + room], None, label, "a"))

    def token_tags(self, toks: list[Token], entities: list[Entity], enc: TaskFeatures) -> list[int]:
        """Tag id per token: B-type on the token where an entity starts, I-type on the tokens inside it."""
        tags = [self.tag_ids["O"]] * len(toks)
        starts = [s for _, _, s, _ in toks]
        for start, end, etype in entities:
            enc.boundaries += 2
            enc.boundaries_inside += sum(any(s < x < e for _, _, s, e in toks) for x in (start, end))
            first = True
            for i, s in enumerate(starts):
                e = toks[i][3]
                if e > start and s < end:  # the token overlaps the entity
                    tags[i] = self.tag_ids[f"{'B' if first else 'I'}-{etype}"]
                    first = False
        return tags

    def decode(self, cfg: FinetuneConfig, examples: list[Example], features: list[Feature],
               logits: list[torch.Tensor]) -> list[list[list]]:
        """A list of [start, end, type] character entities per example."""
        per_example: list[list[tuple[str, int, int]]] = [[] for _ in examples]
        for f, row in zip(features, logits):
            tags = row[: len(f.input_ids)].argmax(-1).tolist()
            per_example[f.example] += [(self.tag_names[t], s, e) for t, (s, e) in zip(tags, f.spans) if s >= 0]
        return [[list(e) for e in tokens_to_entities(toks, len(ex.text))] for toks, ex in zip(per_example, examples)]

    def gold(self, ex: Example) -> list[list] | None:
        return [list(e) for e in ex.entities] if ex.entities is not None else None

    def score(self, examples: list[Example], pred: list) -> dict[str, float]:
        return entity_f1([[tuple(e) for e in p] for p in pred], [ex.entities for ex in examples])

    def submission(self, examples: list[Example], pred: list) -> str:
        rows = []
        for ex, p in zip(examples, pred):
            label: dict[str, dict[str, list[list[int]]]] = {}
            for s, e, t in p:
                label.setdefault(t, {}).setdefault(ex.text[s:e], []).append([s, e - 1])
            rows.append({"id": ex.id, "label": label})
        return _json_lines(rows)


def tokens_to_entities(tokens: list[tuple[str, int, int]], n_chars: int) -> list[Entity]:
    """Tags of tokens (with their character spans) → character entities: a B-/I- token tags all its
    characters, the first one B- where the token is B-; characters no token covers (spaces) continue the
    entity around them only if the next token does."""
    chars = ["O"] * n_chars
    for tag, s, e in tokens:
        if tag != "O":
            kind = tag[2:]
            chars[s:e] = [tag] + [f"I-{kind}"] * (e - s - 1)
    covered = [False] * n_chars
    for _, s, e in tokens:
        covered[s:e] = [True] * (e - s)
    for i in range(1, n_chars - 1):
        if not covered[i] and chars[i - 1] != "O" and chars[i + 1].startswith("I-") \
                and chars[i + 1][2:] == chars[i - 1][2:]:
            chars[i] = chars[i + 1]
    return tags_to_entities(chars, scheme="bio")


class Span(Kind):
    """An answer span in a context, after a question (segment 0) truncated to ``max_query_len``: the span head's
    start and end over overlapping windows of the context (``stride`` tokens between starts); CMRC2018 EM and F1;
    a submission object {id: answer}."""

    metric, main, boundaries = "em_f1", "f1", True

    def head(self, folder: Path, pooling: Pooling = "cls") -> nn.Module:
        return ZhBertForSpanExtraction.from_pretrained(folder)

    def admit(self, examples: list[Example], path: Path, split: str, counts: dict[str, Any]) -> list[Example]:
        """A training question none of whose answers is in its context cannot be trained: left out and counted
        (BERT's run_squad skips them too); in dev and test it stays, scored by the answers' text."""
        if split != "train":
            return examples
        kept = [e for e in examples if e.answers is None or any(start >= 0 for start, _ in e.answers)]
        counts["dropped_no_answer"] = len(examples) - len(kept)
        return kept

    def encode(self, encoder: TaskEncoder, n: int, ex: Example, enc: TaskFeatures) -> None:
        q = encoder.read(ex.question or "", enc)
        if len(q) > encoder.max_query_len:
            enc.truncated += 1  # the question; the context is read in windows instead
            q = q[: encoder.max_query_len]
        ctx = encoder.read(ex.text, enc)
        room = encoder.max_len - len(q) - 3
        if room < 16:
            raise ValueError(f"max_len {encoder.max_len} leaves {room} context tokens after the question; raise it")
        target = None
        answer = next((a for a in ex.answers or [] if a[0] >= 0), None)  # the first one found in the context
        if answer is not None:
            start, end = answer[0], answer[0] + len(answer[1])
            enc.boundaries += 2
            enc.boundaries_inside += sum(any(s < x < e for _, _, s, e in ctx) for x in (start, end))
            inside = [i for i, (_, _, s, e) in enumerate(ctx) if e > start and s < end]
            target = (inside[0], inside[-1]) if inside else None
        windows = list(range(0, max(len(ctx) - room, 0) + 1, encoder.stride))
        if windows[-1] + room < len(ctx):
            windows.append(len(ctx) - room)
        enc.windowed += len(windows) > 1
        for w in windows:
            label = None
            if ex.answers:
                label = (0, 0)  # [CLS]: the answer is not in this window
                if target and w <= target[0] and target[1] < w + room:
                    offset = len(q) + 2 - w  # position of context token i is i + offset
                    label = (target[0] + offset, target[1] + offset)
            enc.features.append(encoder.feature(n, q, ctx[w:w + room], label, "b"))

    def decode(self, cfg: FinetuneConfig, examples: list[Example], features: list[Feature],
               logits: list[torch.Tensor]) -> list[str]:
        """Best (start, end) over every window of each question: max start + end logit, end ≥ start, within
        ``max_answer_len`` tokens, both inside the context; '' when no window has one."""
        best: list[tuple[float, str]] = [(-math.inf, "") for _ in examples]
        for f, row in zip(features, logits):
            ctx = torch.tensor([s >= 0 for s, _ in f.spans])
            n = len(f.spans)
            start, end = row[:n, 0].masked_fill(~ctx, -math.inf), row[:n, 1].masked_fill(~ctx, -math.inf)
            pair = start[:, None] + end[None, :]  # (n, n)
            allowed = torch.triu(torch.ones(n, n, dtype=torch.bool)) & ~torch.triu(
                torch.ones(n, n, dtype=torch.bool), diagonal=cfg.max_answer_len)
            pair = pair.masked_fill(~allowed, -math.inf)
            k = int(pair.argmax())
            value = float(pair.view(-1)[k])
            if value > best[f.example][0]:
                i, j = divmod(k, n)
                text = examples[f.example].text
                best[f.example] = (value, text[f.spans[i][0]:f.spans[j][1]])
        return [a for _, a in best]

    def gold(self, ex: Example) -> list[str] | None:
        return [a for _, a in ex.answers] if ex.answers is not None else None

    def score(self, examples: list[Example], pred: list) -> dict[str, float]:
        return span_em_f1(pred, [[a for _, a in ex.answers] for ex in examples])

    def submission(self, examples: list[Example], pred: list) -> str:
        return json.dumps({ex.id: p for ex, p in zip(examples, pred)}, ensure_ascii=False, indent=1) + "\n"


class Correction(Kind):
    """Chinese spelling correction (SIGHAN): the label of an example is its text spelt right, of the same length.
    At every token the MLM head (taken over from pretraining) names the token that belongs there: its own id where
    the text is right, the id of the right text of its characters where it is wrong (a position whose right text
    is no token of the vocab has no label, and is counted). A word-level model predicts words and is scored on
    characters: a predicted token replaces the characters of its span only where it is as long as the span. The
    text is read in consecutive windows of ``max_len``. Scores: SIGHAN sentence- and character-level detection
    and correction (``zhbert/finetune/sighan.py``), sentence-level correction F1 the main one; a submission line
    {"id", "prediction"} per test example."""

    metric, main, robust = "sighan", "sentence_correction_f1", False

    def head(self, folder: Path, pooling: Pooling = "cls") -> nn.Module:
        return ZhBertForCorrection.from_pretrained(folder)

    def admit(self, examples: list[Example], path: Path, split: str, counts: dict[str, Any]) -> list[Example]:
        """An example whose right text is not as long as the text cannot be scored: left out and counted."""
        kept = [e for e in examples if e.label is None or len(e.label) == len(e.text)]
        counts["dropped_lengths_differ"] = len(examples) - len(kept)
        return kept

    def encode(self, encoder: TaskEncoder, n: int, ex: Example, enc: TaskFeatures) -> None:
        self.surfaces = encoder.surfaces
        toks = encoder.read(ex.text, enc)
        labels = None
        if ex.label is not None:
            source, right = encoder.normalize.aligned(ex.text), encoder.normalize.aligned(ex.label)
            labels = []
            for i, _, s, e in toks:
                wrong = source[s:e] != right[s:e]
                labels.append(encoder.token_id(right[s:e]) if wrong else i)
                enc.counts["errors"] = enc.counts.get("errors", 0) + wrong
                enc.counts["errors_without_label"] = enc.counts.get("errors_without_label", 0) + (
                    wrong and labels[-1] == IGNORE)
        room = encoder.max_len - 2
        enc.windowed += len(toks) > room
        for w in range(0, max(len(toks), 1), room):
            label = [IGNORE, *labels[w:w + room], IGNORE] if labels is not None else None
            enc.features.append(encoder.feature(n, toks[w:w + room], None, label, "a"))

    def decode(self, cfg: FinetuneConfig, examples: list[Example], features: list[Feature],
               logits: list[torch.Tensor]) -> list[str]:
        """The text with the characters of each token that the model replaces by another token of their length."""
        chars = [list(ex.text) for ex in examples]
        for f, row in zip(features, logits):
            for (s, e), old, new in zip(f.spans, f.input_ids, row[: len(f.input_ids)].tolist()):
                name = self.surfaces[new]
                if s >= 0 and new != old and len(name) == e - s:
                    chars[f.example][s:e] = list(name)
        return ["".join(c) for c in chars]

    def reduce(self, logits: torch.Tensor) -> torch.Tensor:
        """The predicted token per position (B, T): (B, T, V) logits of a whole split would not fit in memory."""
        return logits.argmax(-1)

    def gold(self, ex: Example) -> str | None:
        return ex.label

    def score(self, examples: list[Example], pred: list) -> dict[str, float]:
        scores = sighan_scores([ex.text for ex in examples], [ex.label for ex in examples], pred)
        return {f"{level}_{m}": scores[level][m] for level in LEVELS for m in ("precision", "recall", "f1")} | {
            "sentences": scores["sentences"], "sentences_with_errors": scores["sentences_with_errors"]}

    def submission(self, examples: list[Example], pred: list) -> str:
        return _json_lines([{"id": ex.id, "prediction": p} for ex, p in zip(examples, pred)])


KINDS: dict[str, type[Kind]] = {"classification": Classification, "pair": Pair, "token": Tagging, "span": Span,
                                "csc": Correction}
"""The kinds by the name task specs give them (``TaskSpec.kind``)."""


def kind_of(spec: TaskSpec) -> Kind:
    """The kind of ``spec``, its fields checked; an unknown kind or metric lists the known ones."""
    if spec.kind not in KINDS:
        raise ConfigError(f"kind must be one of {list(KINDS)}, got {spec.kind!r}")
    metrics = list(dict.fromkeys(k.metric for k in KINDS.values()))
    if spec.metric not in metrics:
        raise ConfigError(f"metric must be one of {metrics}, got {spec.metric!r}")
    return KINDS[spec.kind](spec)
