"""The task registry: a fine-tuning task is data, a ``TaskSpec`` read from ``configs/tasks/<name>.toml``
(or any TOML file given by path), never a new script. This module also holds the readers of the
layouts those specs name, which turn files into ``Example`` records:

    json     one JSON object per line (AFQMC, TNEWS, IFLYTEK, OCNLI, CMNLI, CSL, CLUEWSC2020, generic)
    tsv      tab-separated with a header row naming the columns (generic classification)
    cluener  CLUENER2020 json lines: {"text", "label": {type: {entity: [[start, end], …]}}}, end inclusive
    tags     one character and its tag per line, blank line between sentences (BIO or BMES: MSRA NER)
    squad    SQuAD-style json (CMRC2018): data → paragraphs → context + qas → question + answers

Every reader error names the file and line, and every unknown name (task, field, label) is listed
next to the known ones. Every example dropped or changed on the way in is counted (``read_split``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from zhbert.config import ConfigError, load, override, shipped

TASKS_DIR = shipped("configs") / "tasks"
SPLITS = ("train", "dev", "test")


@dataclass
class TaskSpec:
    """One task: where its files are, which fields hold what, its labels, head and metric."""

    name: str = ""
    """Task name."""
    submission: str = ""
    """File name of the CLUE submission; empty: ``<name>_predict.json``. CLUE 1.1 names a few differently
    (tnews11_predict.json, ocnli_50k_predict.json, cluewsc11_predict.json)."""
    kind: str = "classification"
    """The task kind, a name in ``zhbert.finetune.kinds.KINDS`` (classification, pair, token, span, csc): its head,
    inputs, predictions, score and submission file."""
    layout: Literal["json", "tsv", "cluener", "tags", "squad"] = "json"
    """File layout (see the module docstring)."""
    files: dict[str, str] = field(default_factory=lambda: {s: f"{s}.json" for s in SPLITS})
    """File of each split inside the data folder; a missing test file means no test predictions."""
    text: str = "sentence"
    """Field (json) or column (tsv) of the text, sentence A for pairs; a list value is joined with ``join``."""
    text_pair: str = ""
    """Field of sentence B (pair tasks)."""
    label: str = "label"
    """Field of the label (json / tsv)."""
    id: str = "id"
    """Field of the example id; where it is absent the line number (from 0) is the id, as in CLUE."""
    labels: list[str] = field(default_factory=list)
    """Classification: the label set, in head order. Token tasks: the entity types."""
    drop_labels: list[str] = field(default_factory=list)
    """Labels whose examples are dropped when read, and counted (OCNLI / CMNLI: "-", no annotator majority)."""
    join: str = " "
    """Separator for list-valued text fields (CSL keywords)."""
    mark_spans: bool = False
    """CLUEWSC2020: wrap span1 in _…_ and span2 in […] inside the text, as the CLUE baseline does."""
    tags: Literal["bio", "bmes"] = "bio"
    """Tag scheme of a ``tags`` file (BMES also accepts B/M/E/S with I as M)."""
    metric: str = "accuracy"
    """Main metric, the one its kind is scored with: accuracy, entity_f1 (entity-level micro F1), em_f1 (CMRC2018
    exact match / F1, F1 the main one) or sighan (spelling check: detection and correction P / R / F1 by sentence
    and by character, sentence-level correction F1 the main one)."""
    description: str = ""

    def __post_init__(self) -> None:
        from zhbert.finetune.kinds import kind_of  # kinds reads TaskSpec: imported here, not at the top

        self.submission = self.submission or f"{self.name}_predict.json"
        kind_of(self)  # checks the fields its kind needs
        unknown = sorted(set(self.files) - set(SPLITS))
        if unknown or "train" not in self.files:
            raise ConfigError(f"task {self.name!r}: files must name train (and dev, test), got {sorted(self.files)}")


def known_tasks() -> list[str]:
    return sorted(p.stem for p in TASKS_DIR.glob("*.toml"))


def get_task(name: str, overrides: list[str] | None = None) -> TaskSpec:
    """A registered task by name, or a task TOML file by path; an unknown name lists the known ones."""
    path = Path(name)
    if not (path.suffix == ".toml" and path.exists()):
        path = TASKS_DIR / f"{name}.toml"
        if not path.exists():
            raise ConfigError(f"unknown task {name!r}; known: {', '.join(known_tasks())} "
                              f"(or give the path of a task .toml file)")
    spec = load(TaskSpec, path, overrides)
    return spec if spec.name else load(TaskSpec, path, [*(overrides or []), override("name", path.stem)])


Entity = tuple[int, int, str]  # [start, end) character offsets and type


@dataclass
class Example:
    """One example. ``entities``: token tasks; ``answers`` (start, text): span tasks, with ``question``."""

    id: Any
    text: str
    text_pair: str | None = None
    label: str | None = None
    entities: list[Entity] | None = None
    question: str | None = None
    answers: list[tuple[int, str]] | None = None
    where: str = ""  # file:line, for messages


class TaskDataError(ValueError):
    """A data file that does not fit its task spec; the message names the file and line."""


def read_split(spec: TaskSpec, data_dir: str | Path, split: str,
               counts: dict[str, Any] | None = None) -> list[Example] | None:
    """The examples of one split, or None when the split has no file in ``data_dir`` (test, dev).

    What is dropped or changed on the way in is added to ``counts`` (the run prints it and keeps it in
    metrics.json): ``dropped_labels`` {label: n} for the task's ``drop_labels`` (OCNLI / CMNLI "-");
    ``answers_relocated``, answers whose ``answer_start`` does not point at them, moved to their first
    occurrence; ``answers_not_found``, answers that are nowhere in their context: kept for scoring (by text, as
    the official script scores), but a training question none of whose answers is in its context cannot be
    trained and is left out, ``dropped_no_answer`` (BERT's run_squad skips them too)."""
    counts = {} if counts is None else counts
    if split not in spec.files:
        return None
    path = Path(data_dir) / spec.files[split]
    if not path.exists():
        if split == "train":
            raise FileNotFoundError(f"{path}: no training file for task {spec.name!r} "
                                    f"(expected files: {spec.files})")
        return None
    from zhbert.finetune.kinds import kind_of  # kinds reads TaskSpec: imported here, not at the top

    return kind_of(spec).admit(READERS[spec.layout](spec, path, counts), path, split, counts)


def _json_lines(path: Path) -> list[tuple[int, dict]]:
    out = []
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise TaskDataError(f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise TaskDataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            out.append((lineno, obj))
    return out


def _field(obj: dict, name: str, where: str, join: str = " ") -> Any:
    if name not in obj:
        raise TaskDataError(f"{where}: no field {name!r}; fields here: {sorted(obj)}")
    value = obj[name]
    return join.join(map(str, value)) if isinstance(value, list) else value


def _mark_spans(obj: dict, text: str, where: str) -> str:
    """CLUEWSC2020: _span1_ and [span2] marked in the text (the CLUE baseline's input)."""
    t = _field(obj, "target", where)
    spans = [(t["span1_index"], t["span1_text"], "_", "_"), (t["span2_index"], t["span2_text"], "[", "]")]
    for start, span, _, _ in spans:
        if text[start:start + len(span)] != span:
            raise TaskDataError(f"{where}: span {span!r} is not at index {start} of the text")
    for start, span, left, right in sorted(spans, reverse=True):  # right to left: earlier offsets stay valid
        text = text[:start] + left + span + right + text[start + len(span):]
    return text


def _read_json(spec: TaskSpec, path: Path, counts: dict[str, Any]) -> list[Example]:
    out = []
    for i, (lineno, obj) in enumerate(_json_lines(path)):
        where = f"{path}:{lineno}"
        text = str(_field(obj, spec.text, where, spec.join))
        if spec.mark_spans:
            text = _mark_spans(obj, text, where)
        pair = str(_field(obj, spec.text_pair, where, spec.join)) if spec.text_pair else None
        label = obj.get(spec.label)
        label = None if label is None else str(label).lower() if isinstance(label, bool) else str(label)
        out.append(Example(obj.get(spec.id, i), text, pair, label, where=where))
    return out


def _read_tsv(spec: TaskSpec, path: Path, counts: dict[str, Any]) -> list[Example]:
    out = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        for i, row in enumerate(rows):
            where = f"{path}:{i + 2}"
            if None in row:
                raise TaskDataError(f"{where}: more columns than the header {rows.fieldnames}")
            out.append(Example(row.get(spec.id) or i, str(_field(row, spec.text, where)),
                               str(_field(row, spec.text_pair, where)) if spec.text_pair else None,
                               row.get(spec.label) or None, where=where))
    return out


def _read_cluener(spec: TaskSpec, path: Path, counts: dict[str, Any]) -> list[Example]:
    out = []
    for i, (lineno, obj) in enumerate(_json_lines(path)):
        where = f"{path}:{lineno}"
        text = _field(obj, spec.text, where)
        entities = None
        if spec.label in obj:
            entities = []
            for etype, mentions in (obj[spec.label] or {}).items():
                for mention, spans in mentions.items():
                    for start, end in spans:  # end inclusive in CLUENER
                        if text[start:end + 1] != mention:
                            raise TaskDataError(f"{where}: entity {mention!r} is not at [{start}, {end}] of the "
                                                f"text (found {text[start:end + 1]!r})")
                        entities.append((start, end + 1, etype))
            entities.sort()
        out.append(Example(obj.get(spec.id, i), text, entities=entities, where=where))
    return out


PREFIXES = {"bio": ("B", "I", "O"), "bmes": ("B", "I", "M", "E", "S", "O")}


def tags_to_entities(tags: list[str], where: str = "", scheme: str = "bmes") -> list[Entity]:
    """BIO / BMES tags of consecutive characters → [start, end) entities. An I/M/E that does not continue
    an entity of its type starts a new one (the usual lenient reading, as seqeval's)."""
    out: list[Entity] = []
    start, etype = -1, ""
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, t = tag.partition("-")
        if prefix not in PREFIXES[scheme] or (prefix != "O" and not t):
            raise TaskDataError(f"{where}: tag {tag!r} is not O or {'/'.join(PREFIXES[scheme][:-1])}-TYPE "
                                f"({scheme.upper()} tags)")
        inside = prefix in ("I", "M", "E") and start >= 0 and t == etype
        if not inside and start >= 0:
            out.append((start, i, etype))
            start = -1
        if prefix in ("B", "S") or (prefix in ("I", "M", "E") and not inside):
            start, etype = i, t
        if prefix in ("E", "S") and start >= 0:
            out.append((start, i + 1, etype))
            start = -1
    return out


def _read_tags(spec: TaskSpec, path: Path, counts: dict[str, Any]) -> list[Example]:
    out: list[Example] = []
    chars: list[str] = []
    tags: list[str] = []
    first = 0
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate([*f, ""], 1):
            line = line.rstrip("\n")
            if line.strip():
                char, sep, tag = line.rpartition(" ") if " " in line else line.rpartition("\t")
                if not sep:
                    raise TaskDataError(f"{path}:{lineno}: expected 'char TAG', got {line!r}")
                if len(char) > 1:  # not one character a line: no repair can know which characters are the text
                    raise TaskDataError(f"{path}:{lineno}: {char!r} is {len(char)} characters; a tags file has one "
                                        "character and its tag per line (convert word-level files first)")
                chars.append(char or " ")
                tags.append(tag.strip())
                first = first or lineno
            elif chars:
                where = f"{path}:{first}"
                entities = tags_to_entities(tags, where, spec.tags)
                out.append(Example(len(out), "".join(chars), entities=entities, where=where))
                chars, tags, first = [], [], 0
    return out


def _read_squad(spec: TaskSpec, path: Path, counts: dict[str, Any]) -> list[Example]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise TaskDataError(f"{path}:{e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise TaskDataError(f"{path}: expected SQuAD-style JSON {{\"data\": [{{\"paragraphs\": …}}]}}")
    counts |= {"answers_relocated": 0, "answers_not_found": 0}
    out = []
    for article in data["data"]:
        for para in article["paragraphs"]:
            context = para["context"]
            for qa in para["qas"]:
                where = f"{path}: question {qa.get('id')}"
                answers = None
                if qa.get("answers"):
                    answers = []
                    for a in qa["answers"]:
                        start = a.get("answer_start", -1)
                        if context[start:start + len(a["text"])] != a["text"]:  # CMRC has a few off-by-some
                            start = context.find(a["text"])
                            counts["answers_relocated" if start >= 0 else "answers_not_found"] += 1
                        answers.append((start, a["text"]))
                out.append(Example(qa["id"], context, question=qa["question"], answers=answers, where=where))
    return out


READERS = {"json": _read_json, "tsv": _read_tsv, "cluener": _read_cluener, "tags": _read_tags, "squad": _read_squad}
