"""Read a finished `zhbert compare` runs folder into one typed structure, checking that every file is there.

Layout read (written by `zhbert compare`, `zhbert pretrain` and `zhbert finetune`)::

    <runs>/compare.json                                   name, reference, tasks, seeds by task, variants, machine, date
    <runs>/<variant>/pretrain/metrics.jsonl               train / eval / resume records (last per step wins)
    <runs>/<variant>/pretrain/export/training.json        config, parameters, FLOPs/token, counts, train_seconds
    <runs>/<variant>/finetune/<task>/seed-<s>/metrics.json  one fine-tuning run: the source of every score
    <runs>/<variant>/finetune/<task>/summary.json          mean ± std as finetune printed it (cross-checked)
    <runs>/<control>/finetune/<task>/seed-<s>/metrics.json  the no-pretraining control of a variant's model (if any)

Scores come from the per-seed files, not the summaries, so that seed s of a variant can be paired with seed s
of the reference.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from zhbert.files import read_json
from zhbert.layout import METRICS, SEED_METRICS, SUMMARY, TRAINING, CompareDir, RunDir, scored_split, seed_dir
from zhbert.train.metrics import read_metrics


class RunsError(FileNotFoundError):
    """A runs folder that is missing files or disagrees with itself; the message lists every problem."""


@dataclass
class Variant:
    """One pretrained model of the comparison, as compare.json describes it."""

    name: str
    embedding: str
    masking: str
    description: str = ""
    control: str | None = None
    """The run fine-tuned from this variant's model untrained (the no-pretraining control), if the comparison has
    one."""


@dataclass
class Pretraining:
    """What one variant's pretraining cost and reached: the figures a reader needs to judge fairness."""

    steps: int
    batch_size: int
    """Sequences per optimizer step, all ranks together."""
    seed: int
    """Pretraining seed: with the same shards it fixes the order of the rows seen."""
    world_size: int
    shards: str
    """Hash of the shards' config (char view, or the word view built from it)."""
    parameters: int
    flops_per_token: float
    sequences: int
    tokens: int
    chars: int
    train_seconds: float
    """Sum of the step times: no evaluation, checkpointing or start-up."""
    tokens_per_s: float
    bits_per_char: float
    """Held-out bits per character at the last evaluation, whole words masked: comparable across char and word
    tokens, and across runs, since every run's held-out masks are the same (zhbert.train.masking)."""
    char_bits_per_char: float | None
    """The same with single characters masked; None for a word-level model (its tokens are words)."""
    accuracy: float
    """Held-out masked-token accuracy at the last evaluation, whole words masked."""
    unigram_bits_per_char: float
    unigram_accuracy: float
    """The unigram reference on the same masks: predicting every masked token from the training rows' token
    frequencies (per vocabulary, so char and word models have their own). The floor of "learned something"."""
    char_unigram_bits_per_char: float | None
    mlm_loss: float
    """Held-out MLM loss (nats per masked token) at the last evaluation, whole words masked."""
    eval_step: int
    eval_masked_chars: int
    """Characters hidden in the held-out rows (whole words): equal for runs evaluated on the same masks."""
    eval_masking: str
    """The evaluation masking, in words."""
    mask_rate: float
    """Share of the maskable tokens that training selected for prediction (whole-word and char masking alike)."""
    resumed: int
    """How many times the run was resumed (from a distinct step)."""
    train_curve: list[tuple[int, float]]
    """(characters seen, training MLM bits per character: no sentence-pair loss) per logged step."""
    eval_curve: list[tuple[int, float, float | None]]
    """(characters seen, held-out bits per char with whole words / single characters masked) per evaluation."""


@dataclass
class TaskScores:
    """One task's scores for one variant: seed → the main metric on ``split``."""

    metric: str
    split: str
    scores: dict[int, float]
    finetune_seconds: float
    robust: dict[str, dict[int, float]] = field(default_factory=dict)
    """Robustness set (homophone, lookalike) → seed → the main metric on ``split`` perturbed, where fine-tuning
    scored one (zhbert/finetune/robustness.py)."""

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores.values())

    @property
    def std(self) -> float:
        """Sample standard deviation over seeds (0 with one seed), as `zhbert finetune` reports it."""
        return statistics.stdev(self.scores.values()) if len(self.scores) > 1 else 0.0


@dataclass
class Runs:
    """Everything the report shows, read from a runs folder."""

    folder: Path
    name: str
    reference: str
    tasks: list[str]
    seeds: dict[str, list[int]]
    """task → the seeds each of its variants and controls was fine-tuned with."""
    variants: list[Variant]
    pretraining: dict[str, Pretraining]
    """variant → its pretraining figures."""
    finetune: dict[str, dict[str, TaskScores]]
    """task → variant or control → scores."""
    controls: list[str] = field(default_factory=list)
    """The no-pretraining controls, each fine-tuned like a variant (see ``Variant.control``)."""
    machine: str = ""
    date: str = ""
    warnings: list[str] = field(default_factory=list)
    """Inconsistencies that do not stop the report but that a reader should see."""

    def metric(self, task: str) -> str:
        return self.finetune[task][self.reference].metric

    def split(self, task: str) -> str:
        return self.finetune[task][self.reference].split


def collect(runs: str | Path) -> Runs:
    """Read ``runs``; a missing or inconsistent file anywhere raises one `RunsError` naming all of them."""
    folder = Path(runs)
    spec_path = CompareDir(folder).spec
    if not spec_path.exists():
        raise RunsError(f"{folder}: no compare.json; is this a `zhbert compare` runs folder?")
    spec = read_json(spec_path)
    variants = [Variant(v["name"], v["embedding"], v["masking"], v.get("description", ""), v.get("control"))
                for v in spec["variants"]]
    names = [v.name for v in variants]
    controls = list(dict.fromkeys(v.control for v in variants if v.control))
    if spec["reference"] not in names:
        raise RunsError(f"{spec_path}: reference {spec['reference']!r} is not one of the variants {names}")
    tasks = list(spec["tasks"])
    # one list for every task, or (since task_seeds) a list per task
    seeds = {t: [int(s) for s in (spec["seeds"][t] if isinstance(spec["seeds"], dict) else spec["seeds"])]
             for t in tasks}
    missing, warnings = [], []
    pretraining: dict[str, Pretraining] = {}
    for v in names:
        pre = CompareDir(folder).pretrain(v)
        files = [pre.metrics, pre.export / TRAINING]
        absent = [f for f in files if not f.exists()]
        if absent:
            missing += [f"{v}: {f}" for f in absent]
            continue
        pretraining[v] = _pretraining(pre.root, warnings)
    scores: dict[str, dict[str, TaskScores]] = {t: {} for t in tasks}
    for t in tasks:
        for v in names + controls:
            task_dir = CompareDir(folder).finetune(v, t)
            absent = [seed_dir(task_dir, s) / SEED_METRICS for s in seeds[t]]
            absent = [f for f in absent if not f.exists()]
            if absent:
                missing += [f"{v}: {f}" for f in absent]
                continue
            scores[t][v] = _task_scores(task_dir, seeds[t], f"{v}/{t}", warnings)
    if missing:
        raise RunsError(f"{folder}: {len(missing)} file(s) missing (an unfinished compare run?):\n  "
                        + "\n  ".join(missing))
    for t in tasks:
        kinds = {(s.metric, s.split) for s in scores[t].values()}
        if len(kinds) > 1:
            raise RunsError(f"{folder}: task {t} is scored differently across variants: "
                            + ", ".join(f"{v}: {s.split} {s.metric}" for v, s in scores[t].items()))
    return Runs(folder, spec.get("name", folder.name), spec["reference"], tasks, seeds, variants, pretraining,
                scores, controls, spec.get("machine", ""), spec.get("date", ""), warnings)


def _pretraining(pre: Path, warnings: list[str]) -> Pretraining:
    training = read_json(RunDir(pre).export / TRAINING)
    cfg = training["config"]
    train, evals = read_metrics(pre, "train"), read_metrics(pre, "eval")
    if not train or not evals:
        raise RunsError(f"{pre / METRICS}: {'no train records' if not train else 'no eval records'}; "
                        "the held-out bits per char come from the eval records")
    last = evals[-1]
    if last["step"] != training["steps"]:
        warnings.append(f"{pre}: the last held-out evaluation is at step {last['step']}, not at the end "
                        f"(step {training['steps']})")
    if train[-1]["chars"] != training["chars"]:
        warnings.append(f"{pre}: metrics.jsonl ends at {train[-1]['chars']:,} characters but training.json says "
                        f"{training['chars']:,}: is the export from another run?")
    resumed = len(read_metrics(pre, "resume"))
    return Pretraining(
        steps=training["steps"], batch_size=cfg["batch_size"], seed=cfg["seed"], world_size=training["world_size"],
        shards=training["data"]["shards_config_hash"], parameters=training["parameters"],
        flops_per_token=training["flops_per_token"], sequences=training["sequences"], tokens=training["tokens"],
        chars=training["chars"], train_seconds=training["train_seconds"],
        tokens_per_s=training["tokens_per_s"],
        bits_per_char=last["bits_per_char"], char_bits_per_char=last.get("char_bits_per_char"),
        accuracy=last["accuracy"], unigram_bits_per_char=last["unigram_bits_per_char"],
        unigram_accuracy=last["unigram_accuracy"], char_unigram_bits_per_char=last.get("char_unigram_bits_per_char"),
        mlm_loss=last["mlm_loss"], eval_step=last["step"], eval_masked_chars=last["masked_chars"],
        eval_masking=training["eval_masking"], mask_rate=training["mask_rate"], resumed=resumed,
        train_curve=[(r["chars"], r["bits_per_char"]) for r in train],
        eval_curve=[(r["chars"], r["bits_per_char"], r.get("char_bits_per_char")) for r in evals])


def _task_scores(task_dir: Path, seeds: list[int], where: str, warnings: list[str]) -> TaskScores:
    per_seed = {s: read_json(seed_dir(task_dir, s) / SEED_METRICS) for s in seeds}
    metrics = {m["metric"] for m in per_seed.values()}
    splits = {scored_split(m) for m in per_seed.values()}
    if len(metrics) > 1 or len(splits) > 1:
        raise RunsError(f"{task_dir}: the seeds disagree on the metric or split ({sorted(metrics)}, {sorted(splits)})")
    metric, split = metrics.pop(), splits.pop()
    scores = {s: float(m[split][metric]) for s, m in per_seed.items()}
    sets = set.intersection(*({k for k in m if k.startswith(f"{split}.")} for m in per_seed.values()))
    robust = {k.split(".", 1)[1]: {s: float(m[k][metric]) for s, m in per_seed.items()} for k in sorted(sets)}
    summary_path = task_dir / SUMMARY
    if summary_path.exists():
        summary = read_json(summary_path)
        theirs = dict(zip(summary["seeds"], summary["per_seed"]))
        if any(s not in theirs or not math.isclose(theirs[s], v, abs_tol=1e-9) for s, v in scores.items()):
            warnings.append(f"{where}: summary.json per-seed scores {theirs} differ from the seed files {scores}; "
                            "the report uses the seed files")
    return TaskScores(metric, split, scores, sum(m["wall_s"] for m in per_seed.values()), robust)
