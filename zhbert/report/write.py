"""The report of a comparison: report.md (one table, a verdict per task and variant against the reference and
against its no-pretraining control, a fairness section, the plots) and report.json with every number report.md
shows, plus the per-seed scores and the curves."""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zhbert.files import write_json, write_text
from zhbert.report.collect import Runs, collect
from zhbert.report.plots import DOWNSTREAM_PNG, PRETRAIN_PNG, plot_downstream, plot_pretraining
from zhbert.report.stats import ALPHA, PairedTest, paired_t

SCORE_DIGITS = 4
"""Decimals of the scores in report.md (report.json keeps full precision)."""


@dataclass
class Comparison:
    """One variant against the reference on one task: the paired test and the sentence that states it."""

    task: str
    variant: str
    reference: str
    metric: str
    test: PairedTest
    text: str


@dataclass
class Report:
    """What `write_report` wrote, for a caller that prints the table or checks the verdicts."""

    runs: Runs
    comparisons: list[Comparison]
    gains: list[Comparison]
    """Each variant against its no-pretraining control: what pretraining bought, task by task."""
    fairness: list[str]
    """Sentences on whether the variants had the same budget; a difference is flagged in them."""
    table_markdown: str
    markdown: str
    folder: Path
    """Where report.md, report.json and the PNGs are."""
    files: list[Path] = field(default_factory=list)


def write_report(runs: str | Path, out: str | Path) -> Report:
    """Read the runs folder ``runs`` and write report.md, report.json and the PNGs into ``out``."""
    data = collect(runs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    comparisons = against_reference(data)
    gains = pretraining_gains(data)
    fairness = fairness_notes(data)
    table = results_table(data)
    pngs = [plot_pretraining(data, out / PRETRAIN_PNG), plot_downstream(data, out / DOWNSTREAM_PNG)]
    markdown = _markdown(data, table, comparisons, gains, fairness)
    md_path = out / "report.md"
    write_text(md_path, markdown)
    json_path = out / "report.json"
    write_json(json_path, _json(data, comparisons, gains, fairness))
    return Report(data, comparisons, gains, fairness, table, markdown, out, [md_path, json_path, *pngs])


def against_reference(runs: Runs) -> list[Comparison]:
    """Every variant against the reference, task by task, paired by seed."""
    return [paired(runs, task, v.name, runs.reference) for task in runs.tasks for v in runs.variants
            if v.name != runs.reference]


def pretraining_gains(runs: Runs) -> list[Comparison]:
    """Every variant against its no-pretraining control, task by task, paired by seed."""
    return [paired(runs, task, v.name, v.control) for task in runs.tasks for v in runs.variants if v.control]


def paired(runs: Runs, task: str, variant: str, reference: str) -> Comparison:
    scores = runs.finetune[task]
    seeds = sorted(scores[reference].scores)
    test = paired_t([scores[variant].scores[s] for s in seeds], [scores[reference].scores[s] for s in seeds])
    return Comparison(task, variant, reference, runs.metric(task), test,
                      verdict(task, variant, reference, runs.metric(task), test))


def verdict(task: str, variant: str, reference: str, metric: str, test: PairedTest) -> str:
    """One sentence: the difference, whether it exceeds the seed spread, and with what evidence."""
    head = f"{variant} − {reference}: {test.diff:+.{SCORE_DIGITS}f} {metric}"
    if test.p is None:
        return f"{head}; one seed only, so the seed spread is unknown: no claim either way."
    lo, hi = test.ci95
    p = "p<0.001" if test.p < 0.001 else f"p≈{test.p:.2g}"
    evidence = (f"paired t over {test.n} seeds, {p}; 95% CI {lo:+.{SCORE_DIGITS}f} … {hi:+.{SCORE_DIGITS}f}"
                + ("; every seed moved by the same amount" if test.t is not None and math.isinf(test.t) else ""))
    if test.distinguishable:
        better = "better" if test.diff > 0 else "worse"
        return f"{head}, larger than the seed spread ({evidence}): {variant} is {better} than {reference} on {task}."
    return f"{head}, within the seed spread ({evidence}): not distinguishable at this budget."


def fairness_notes(runs: Runs) -> list[str]:
    """Equal budget = the same steps, sequences per step and rows (same shards and seed); say so, or flag it."""
    pre = {v.name: runs.pretraining[v.name] for v in runs.variants}
    notes = []
    for label, attr in (("steps", "steps"), ("sequences per step", "batch_size"),
                        ("pretraining seed (order of the rows)", "seed")):
        values = {v: getattr(p, attr) for v, p in pre.items()}
        if len(set(values.values())) == 1:
            notes.append(f"{label}: {next(iter(values.values())):,} for every variant.")
        else:
            notes.append(f"**Not equal — {label} differ**: "
                         + ", ".join(f"{v} {x:,}" for v, x in values.items())
                         + ". The variants did not have the same budget; weigh the scores accordingly.")
    chars = [p.chars for p in pre.values()]
    spread = max(chars) / max(min(chars), 1) - 1
    if spread > 0.01:
        notes.append(f"**Characters seen differ by {spread:.1%}** between variants "
                     f"({', '.join(f'{v} {p.chars:,}' for v, p in pre.items())}): not the same text.")
    else:
        notes.append("characters seen agree within 1%, as they do when the variants read the same rows (the word "
                     "view is built row for row from the char shards); tokens differ by view, since a word token "
                     "covers one or more characters.")
    rates = {v: p.mask_rate for v, p in pre.items()}
    rate_text = ", ".join(f"{v} {r:.2%}" for v, r in rates.items())
    if max(rates.values()) - min(rates.values()) > 0.01:  # rounding 15 % of short rows alone moves it ~0.3 point
        notes.append(f"**Mask rates differ**: training selected {rate_text} of the maskable tokens.")
    else:
        notes.append(f"mask rate in training (share of maskable tokens selected): {rate_text}.")
    hidden = {v: p.eval_masked_chars for v, p in pre.items()}
    masking = {p.eval_masking for p in pre.values()}
    if len(set(hidden.values())) == 1 and len(masking) == 1:
        notes.append(f"held-out evaluation: the same for every variant, whatever its training masking — "
                     f"{masking.pop()}; {next(iter(hidden.values())):,} held-out characters hidden for each.")
    else:
        notes.append("**Held-out evaluation differs between variants** (characters hidden: "
                     + ", ".join(f"{v} {n:,}" for v, n in hidden.items())
                     + "): their bits per character are not comparable.")
    ref = pre[runs.reference]
    notes.append("parameters relative to the reference: " + ", ".join(
        f"{v} ×{p.parameters / ref.parameters:.2f}" for v, p in pre.items() if v != runs.reference)
        + "; FLOPs per token relative to it: " + ", ".join(
        f"{v} ×{p.flops_per_token / ref.flops_per_token:.2f}" for v, p in pre.items() if v != runs.reference)
        + ". Parameters include the embeddings; FLOPs per token is `zhbert pretrain`'s estimate for the trunk and "
        "the MLM decoder (the glyph and pinyin CNNs are left out).")
    return notes


def results_table(runs: Runs) -> str:
    """The one table: a row per variant, per-task mean ± std, then pretraining figures with the unigram reference
    in brackets; then a row per no-pretraining control (task scores only)."""
    header = ["variant", *(f"{t} ({runs.split(t)} {runs.metric(t)})" for t in runs.tasks),
              "held-out accuracy, words masked (unigram)", "held-out bits/char, words masked (unigram)",
              "held-out bits/char, chars masked (unigram)", "parameters", "FLOPs/token", "tokens/s", "train time",
              "chars seen", "tokens seen"]
    rows = []
    for v in runs.variants:
        p = runs.pretraining[v.name]
        chars_masked = "—" if p.char_bits_per_char is None else \
            f"{p.char_bits_per_char:.3f} ({p.char_unigram_bits_per_char:.3f})"
        rows.append([v.name, *_scores(runs, v.name), f"{p.accuracy:.3f} ({p.unigram_accuracy:.3f})",
                     f"{p.bits_per_char:.3f} ({p.unigram_bits_per_char:.3f})", chars_masked,
                     f"{p.parameters:,}", _si(p.flops_per_token), f"{p.tokens_per_s:,.0f}",
                     _duration(p.train_seconds), f"{p.chars:,}", f"{p.tokens:,}"])
    for c in runs.controls:
        rows.append([f"{c} (no pretraining)", *_scores(runs, c), *["—"] * (len(header) - 1 - len(runs.tasks))])
    return _table(header, rows)


def _scores(runs: Runs, name: str) -> list[str]:
    return [_mean_std(list(runs.finetune[t][name].scores.values())) for t in runs.tasks]


def budget_table(runs: Runs) -> str:
    """Per variant, what was trained on what: the detail behind the fairness notes."""
    header = ["variant", "embedding", "masking", "steps", "sequences/step", "sequences seen", "ranks",
              "shards", "resumed"]
    rows = []
    for v in runs.variants:
        p = runs.pretraining[v.name]
        rows.append([v.name, v.embedding, v.masking, f"{p.steps:,}", f"{p.batch_size:,}", f"{p.sequences:,}",
                     str(p.world_size), f"`{p.shards}`", str(p.resumed)])
    return _table(header, rows)


def robustness_table(runs: Runs) -> str:
    """Per task, model and robustness set: the clean score, the perturbed one and the drop (clean − perturbed,
    paired by seed), each mean ± std over seeds; '' when no run scored a robustness set."""
    rows = []
    for t in runs.tasks:
        for name in [v.name for v in runs.variants] + runs.controls:
            s = runs.finetune[t][name]
            for perturbation, perturbed in s.robust.items():
                drop = [s.scores[seed] - perturbed[seed] for seed in s.scores]
                rows.append([t, name, perturbation, _mean_std(list(s.scores.values())),
                             _mean_std(list(perturbed.values())), _mean_std(drop)])
    return _table(["task", "model", "set", "clean", "perturbed", "drop"], rows) if rows else ""


def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{SCORE_DIGITS}f} ± {std:.{SCORE_DIGITS}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _si(x: float) -> str:
    for scale, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.0f}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _by_task(runs: Runs, comparisons: list[Comparison]) -> list[str]:
    """The verdicts as markdown lines, under a heading per task."""
    lines = []
    for task in runs.tasks:
        lines += [f"**{task}** ({runs.split(task)} {runs.metric(task)})", ""]
        lines += [f"- {c.text}" for c in comparisons if c.task == task]
        lines.append("")
    return lines


def _markdown(runs: Runs, table: str, comparisons: list[Comparison], gains: list[Comparison],
              fairness: list[str]) -> str:
    where = ", ".join(x for x in (runs.machine, runs.date) if x)
    parts = [f"# Comparison: {runs.name}", "",
             f"Runs folder `{runs.folder}`{f' ({where})' if where else ''}. Reference: **{runs.reference}**. "
             f"Fine-tuning seeds: {_seeds_in_words(runs)}.", "", "## Results", "", table, "",
             "Scores: mean ± sample standard deviation over the task's seeds, on the split named in the header. "
             "Held-out accuracy and bits/char: pretraining MLM on held-out rows at the last evaluation, bits per "
             "character being comparable across char and word tokens, with the same masks for every variant: whole "
             "words, or single characters (not for the word model, whose tokens are words). In brackets the unigram "
             "reference on the same masks: predicting every masked token from the training rows' token "
             "frequencies, the floor a model that learned anything clears. Rows \"(no pretraining)\": the variants' "
             "models fine-tuned untrained, with the same seeds and settings. Train time: the sum of step times (no "
             "evaluation, checkpoints or start-up). Chars and tokens seen: pretraining, all ranks.", "",
             "## Is a difference larger than the seed spread?", "",
             "Each variant against the reference, paired by seed (the same seed gives both the same head "
             "initialisation and batch order); two-sided paired t-test at 95%. "
             f"{_chance(len(comparisons))}", "", *_by_task(runs, comparisons)]
    if gains:
        parts += ["## What did pretraining buy?", "",
                  "Each variant against its model fine-tuned untrained (the same weights a pretraining run starts "
                  f"from), paired by seed, as above. {_chance(len(gains))}", "", *_by_task(runs, gains)]
    if robust := robustness_table(runs):
        parts += ["## Robustness", "",
                  "Each model's fine-tuned weights scored again on the same split with a share of the hanzi of every "
                  "text replaced by a homophone or a look-alike character (pycorrector's confusion sets; labels and "
                  "spans unchanged; zhbert/finetune/robustness.py). Drop: clean − perturbed, paired by seed.", "",
                  robust, ""]
    parts += ["## Fairness", "", *[f"- {n}" for n in fairness], "", budget_table(runs), "", "## Variants", ""]
    parts += [f"- **{v.name}**: {v.embedding} embedding, {v.masking} masking"
              + (f"; {v.description}" if v.description else "") for v in runs.variants]
    parts += ["", "## Plots", "", f"![pretraining bits per character against characters seen]({PRETRAIN_PNG})", "",
              f"![downstream scores, mean ± std over seeds]({DOWNSTREAM_PNG})", ""]
    if runs.warnings:
        parts += ["## Warnings", "", *[f"- {w}" for w in runs.warnings], ""]
    return "\n".join(parts)


def _seeds_in_words(runs: Runs) -> str:
    """``1, 2, 3 for every task``, or each task's seeds where they differ (``CompareConfig.task_seeds``)."""
    if len({tuple(s) for s in runs.seeds.values()}) == 1:
        return f"{', '.join(map(str, runs.seeds[runs.tasks[0]]))} for every task"
    return "; ".join(f"{t} {', '.join(map(str, s))}" for t, s in runs.seeds.items())


def _chance(n: int) -> str:
    """Several tests at 5% each: say how many false alarms to expect, so one lone verdict is read with care."""
    return (f"With {n} comparisons, about {n * ALPHA:.1f} would come out larger than the seed spread by chance "
            "alone when nothing differs: a lone such verdict is weak evidence; a consistent pattern across tasks "
            "is stronger.")


def _finite(x: float | None) -> float | None:
    """JSON has no infinity: an infinite t (every seed moved by the same amount) is written as null."""
    return x if x is not None and math.isfinite(x) else None


def _json(runs: Runs, comparisons: list[Comparison], gains: list[Comparison], fairness: list[str]) -> dict[str, Any]:
    def finetune(name: str) -> dict[str, Any]:
        return {t: {"metric": s.metric, "split": s.split, "mean": s.mean, "std": s.std,
                    "per_seed": {str(seed): x for seed, x in s.scores.items()}, "finetune_seconds": s.finetune_seconds,
                    "robustness": {p: {"per_seed": {str(seed): x for seed, x in r.items()},
                                       "drop_per_seed": {str(seed): s.scores[seed] - x for seed, x in r.items()}}
                                   for p, r in s.robust.items()}}
                for t in runs.tasks for s in [runs.finetune[t][name]]}

    def tests(cs: list[Comparison]) -> list[dict[str, Any]]:
        return [{"task": c.task, "variant": c.variant, "reference": c.reference, "metric": c.metric,
                 "test": "paired t, two-sided, 95%", "n": c.test.n, "diff": c.test.diff, "sd": c.test.sd,
                 "t": _finite(c.test.t), "p": c.test.p, "ci95": c.test.ci95,
                 "distinguishable": c.test.distinguishable, "text": c.text} for c in cs]

    return {
        "name": runs.name, "folder": str(runs.folder), "reference": runs.reference, "seeds": runs.seeds,
        "machine": runs.machine, "date": runs.date,
        "tasks": [{"task": t, "metric": runs.metric(t), "split": runs.split(t)} for t in runs.tasks],
        "variants": [dataclasses.asdict(v) | {"pretraining": dataclasses.asdict(runs.pretraining[v.name]),
                                              "finetune": finetune(v.name)} for v in runs.variants],
        "controls": [{"name": c, "finetune": finetune(c)} for c in runs.controls],
        "comparisons": tests(comparisons),
        "pretraining_gains": tests(gains),
        "fairness": fairness,
        "warnings": runs.warnings,
    }
