"""The comparison report (zhbert/report): the numbers in report.md and report.json are the runs' numbers, the
seed-spread test against hand-computed and tabulated values, resumed runs, the plots, and clear errors.

The runs folders are written here in the layout `zhbert compare` leaves (compare.json, pretraining
metrics.jsonl and export/training.json, fine-tuning seed-*/metrics.json and summary.json) with known numbers."""

from __future__ import annotations

import json
import math
import re
import statistics
import struct
from pathlib import Path

import pytest

from zhbert.report import RunsError, collect, write_report
from zhbert.report.stats import paired_t, t_pvalue, t_quantile
from zhbert.report.write import verdict
from zhbert.train.metrics import read_metrics

SEEDS = [1, 2, 3]
VARIANTS = [("char", "char", "whole-word"), ("word", "word", "whole-word"), ("fusion", "fusion", "char")]
SCORES = {  # task → variant → per-seed test score
    "sentiment": {"char": [0.80, 0.82, 0.81], "word": [0.70, 0.71, 0.72], "fusion": [0.81, 0.80, 0.83]},
    "cluener": {"char": [0.50, 0.55, 0.45], "word": [0.52, 0.50, 0.49], "fusion": [0.50, 0.55, 0.45]},
}
CONTROL_SCORES = {  # the variants' models fine-tuned untrained: task → control → per-seed test score
    "sentiment": {"untrained-char": [0.70, 0.72, 0.71], "untrained-word": [0.70, 0.72, 0.71],
                  "untrained-fusion": [0.80, 0.82, 0.81]},
    "cluener": {"untrained-char": [0.49, 0.56, 0.44], "untrained-word": [0.30, 0.31, 0.32],
                "untrained-fusion": [0.40, 0.41, 0.42]},
}
METRIC = {"sentiment": "accuracy", "cluener": "f1"}
PRE = {  # variant → (parameters, FLOPs/token, final held-out bits/char with words / chars masked, tokens per char)
    "char": (1_283_797, 1_742_284.8, 13.1446, 12.0021, 1.0),
    "word": (2_402_133, 1_802_001.5, 12.9001, None, 0.73),
    "fusion": (1_346_840, 1_742_284.8, 13.0012, 11.9802, 1.0),
}
EVAL_MASKING = "fixed for every run: 15% of each held-out row's maskable characters"


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def pretrain_run(folder: Path, embedding: str, steps: int = 8, batch: int = 32, resume_at: int | None = None) -> None:
    """metrics.jsonl as `zhbert pretrain` logs it (train every step, eval every 4) and the export's training.json.
    With ``resume_at`` the run logs up to step 6, is resumed from ``resume_at`` and logs those steps again with
    other losses (the repeat must win)."""
    params, flops, bpc, char_bpc, tok_per_char = PRE[embedding]
    chars_per_step = 1000 * batch
    t0 = 1_795_445_887.0

    def train(step: int, loss: float) -> dict:
        chars = step * chars_per_step
        return {"kind": "train", "step": step, "time": t0 + step, "loss": loss + 0.5, "mlm_loss": loss,
                "bits_per_char": loss / math.log(2), "pair_loss": 0.5, "mask_rate": 0.15, "lr": 1e-4,
                "tokens_per_s": 5000.0, "sequences": step * batch, "tokens": round(chars * tok_per_char),
                "chars": chars}

    def evaluate(step: int) -> dict:
        b = bpc + (steps - step) * 0.1
        record = {"kind": "eval", "step": step, "time": t0 + step + 0.5, "mlm_loss": b * math.log(2),
                  "accuracy": 0.1, "bits_per_char": b, "masked_tokens": round(1776 * tok_per_char),
                  "masked_chars": 1776, "unigram_accuracy": 0.04, "unigram_bits_per_char": bpc + 0.25,
                  "chars": step * chars_per_step}
        if char_bpc is not None:
            c = char_bpc + (steps - step) * 0.1
            record |= {"char_mlm_loss": c * math.log(2), "char_accuracy": 0.2, "char_bits_per_char": c,
                       "char_masked_tokens": 1700, "char_masked_chars": 1700, "char_unigram_accuracy": 0.03,
                       "char_unigram_bits_per_char": char_bpc + 0.5}
        return record

    records = []
    for step in range(1, steps + 1):
        if resume_at is not None and step == 7:
            records += [train(s, 99.0) for s in range(resume_at + 1, 7)]  # the first attempt, past the checkpoint
            records.append({"kind": "resume", "step": resume_at, "time": t0 + 100})
            records += [train(s, 10.0 - s / 10) for s in range(resume_at + 1, 7)]
        records.append(train(step, 10.0 - step / 10))
        if step % 4 == 0:
            records.append(evaluate(step))
    folder.mkdir(parents=True)
    write_jsonl(folder / "metrics.jsonl", records)
    last = records[-1]
    chars = steps * chars_per_step
    training = {
        "config": {"model": {"embedding": embedding}, "steps": steps, "batch_size": batch, "micro_batch": 16,
                   "seed": 0},
        "config_hash": "f9d686989a94b60d", "world_size": 2, "data": {"shards_config_hash": f"shards-{embedding}"},
        "steps": steps, "parameters": params, "flops_per_token": flops, "sequences": steps * batch,
        "tokens": round(chars * tok_per_char), "chars": chars, "train_seconds": 4.0 * steps,
        "tokens_per_s": chars * tok_per_char / (4.0 * steps), "eval": last, "masked_tokens": 15_000,
        "maskable_tokens": 100_000, "mask_rate": 0.15, "eval_masking": EVAL_MASKING,
    }
    (folder / "export").mkdir()
    (folder / "export" / "training.json").write_text(json.dumps(training), encoding="utf-8")


def finetune_run(folder: Path, task: str, scores: list[float], seeds: list[int] = SEEDS) -> None:
    """seed-<s>/metrics.json and summary.json as zhbert/finetune/run.py writes them."""
    metric = METRIC[task]
    for seed, score in zip(seeds, scores, strict=True):
        d = folder / f"seed-{seed}"
        d.mkdir(parents=True)
        m = {"task": task, "seed": seed, "mode": "full", "metric": metric, "dev": {metric: score + 0.01, "n": 400},
             "test": {metric: score, "n": 400}, "best_epoch": 2, "trainable_params": 1, "total_params": 1,
             "wall_s": 10.0, "truncated": 0}
        (d / "metrics.json").write_text(json.dumps(m), encoding="utf-8")
    summary = {"task": task, "metric": metric, "split": "test", "mean": statistics.fmean(scores),
               "std": statistics.stdev(scores), "seeds": seeds, "per_seed": scores}
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")


def make_runs(root: Path, steps: dict[str, int] | None = None, resume: str | None = None,
              task_seeds: dict[str, list[int]] | None = None) -> Path:
    """A runs folder; its compare.json lists one set of seeds as before ``task_seeds``, or with them the seeds of
    each task."""
    root.mkdir(parents=True, exist_ok=True)
    seeds = {t: (task_seeds or {}).get(t, SEEDS) for t in SCORES}
    spec = {"name": "tiny", "reference": "char", "tasks": list(SCORES), "seeds": seeds if task_seeds else SEEDS,
            "variants": [{"name": n, "embedding": e, "masking": m, "description": f"{n} model",
                          "control": f"untrained-{e}"} for n, e, m in VARIANTS],
            "machine": "test box", "date": "2026-11-23"}
    (root / "compare.json").write_text(json.dumps(spec), encoding="utf-8")
    for name, _, _ in VARIANTS:
        pretrain_run(root / name / "pretrain", name, steps=(steps or {}).get(name, 8),
                     resume_at=4 if name == resume else None)
        for task, by_variant in SCORES.items():
            finetune_run(root / name / "finetune" / task, task, by_variant[name], seeds[task])
    for task, by_control in CONTROL_SCORES.items():
        for control, scores in by_control.items():
            finetune_run(root / control / "finetune" / task, task, scores, seeds[task])
    return root


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    runs = make_runs(tmp / "runs")
    return write_report(runs, tmp / "out"), tmp / "out"


# --- the seed-spread test ---------------------------------------------------------------------------------------

def test_t_quantiles_match_the_printed_table():
    # two-sided 95% critical values of Student's t (NIST/SEMATECH e-Handbook of Statistical Methods, 1.3.6.7.2)
    for dof, table in ((1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (9, 2.262), (30, 2.042)):
        assert t_quantile(0.975, dof) == pytest.approx(table, abs=5e-4)
        assert t_pvalue(table, dof) == pytest.approx(0.05, abs=2e-4)


def test_t_pvalue_by_hand():
    # dof 1 is the Cauchy distribution: P(|T| > t) = 1 − 2/π atan t
    assert t_pvalue(1.0, 1) == pytest.approx(0.5, abs=1e-12)
    # dof 2: P(|T| ≤ t) = t / sqrt(t² + 2)
    assert t_pvalue(3.0, 2) == pytest.approx(1 - 3 / math.sqrt(11), abs=1e-12)
    # scores 1, 2, 3 above the reference: mean 2, sd 1, t = 2√3, p = 1 − 2√3/√14 ≈ 0.0742
    test = paired_t([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert (test.n, test.diff, test.sd) == (3, 2.0, 1.0)
    assert test.t == pytest.approx(2 * math.sqrt(3))
    assert test.p == pytest.approx(1 - 2 * math.sqrt(3) / math.sqrt(14), abs=1e-9)
    assert test.ci95 == pytest.approx((2 - 4.3027 / math.sqrt(3), 2 + 4.3027 / math.sqrt(3)), abs=1e-4)
    assert not test.distinguishable


def test_paired_verdicts():
    same = paired_t([0.8, 0.82, 0.81], [0.8, 0.82, 0.81])
    assert (same.diff, same.p, same.distinguishable) == (0.0, 1.0, False)
    # a consistent paired gain larger than the seed-to-seed spread of either side
    gain = paired_t([0.86, 0.92, 0.80], [0.80, 0.85, 0.74])
    assert gain.distinguishable and gain.p < 0.01
    # the same means, unpaired noise: not distinguishable
    noisy = paired_t([0.86, 0.74, 0.85], [0.80, 0.85, 0.74])
    assert not noisy.distinguishable
    one = paired_t([0.9], [0.8])
    assert one.p is None and not one.distinguishable
    assert verdict("sentiment", "word", "char", "accuracy", one) == \
        "word − char: +0.1000 accuracy; one seed only, so the seed spread is unknown: no claim either way."


# --- the report --------------------------------------------------------------------------------------------------

def markdown_table(md: str) -> list[dict[str, str]]:
    """The first table of report.md as header → cell dicts."""
    lines = md.split("## Results", 1)[1].strip().splitlines()
    lines = lines[:next(i for i, ln in enumerate(lines) if not ln.startswith("|"))]  # up to the table's end
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines[2:]]


def test_table_numbers_are_the_runs_numbers(report):
    rep, out = report
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    rows = markdown_table((out / "report.md").read_text(encoding="utf-8"))
    assert rep.table_markdown in rep.markdown
    assert [r["variant"] for r in rows] == [n for n, _, _ in VARIANTS] + [
        f"untrained-{e} (no pretraining)" for e in ("char", "word", "fusion")]
    for row in rows[len(VARIANTS):]:  # the controls: task scores, no pretraining figures
        control = row["variant"].removesuffix(" (no pretraining)")
        for task, by_control in CONTROL_SCORES.items():
            mean, std = (float(x) for x in row[f"{task} (test {METRIC[task]})"].split(" ± "))
            assert mean == pytest.approx(statistics.fmean(by_control[control]), abs=5e-5)
        assert row["parameters"] == "—" and row["held-out bits/char, words masked (unigram)"] == "—"
    assert [c["name"] for c in data["controls"]] == ["untrained-char", "untrained-word", "untrained-fusion"]
    rows = rows[:len(VARIANTS)]
    by_name = {v["name"]: v for v in data["variants"]}
    for row in rows:
        name = row["variant"]
        v = by_name[name]
        for task, by_variant in SCORES.items():
            scores = by_variant[name]
            # report.json: the per-seed scores are the seed files' numbers, mean and std computed from them
            assert v["finetune"][task]["per_seed"] == {str(s): x for s, x in zip(SEEDS, scores)}
            assert v["finetune"][task]["mean"] == pytest.approx(statistics.fmean(scores))
            assert v["finetune"][task]["std"] == pytest.approx(statistics.stdev(scores))
            # report.md shows the same numbers, rounded
            mean, std = (float(x) for x in row[f"{task} (test {METRIC[task]})"].split(" ± "))
            assert mean == pytest.approx(statistics.fmean(scores), abs=5e-5)
            assert std == pytest.approx(statistics.stdev(scores), abs=5e-5)
        params, flops, bpc, char_bpc, tok_per_char = PRE[name]
        pre = v["pretraining"]
        assert (pre["parameters"], pre["flops_per_token"], pre["bits_per_char"]) == (params, flops, bpc)
        assert pre["char_bits_per_char"] == char_bpc
        assert (pre["steps"], pre["batch_size"], pre["chars"]) == (8, 32, 8 * 32_000)
        assert pre["tokens"] == round(8 * 32_000 * tok_per_char)
        assert int(row["parameters"].replace(",", "")) == params
        assert row["held-out bits/char, words masked (unigram)"] == f"{bpc:.3f} ({bpc + 0.25:.3f})"
        assert row["held-out accuracy, words masked (unigram)"] == "0.100 (0.040)"
        chars_masked = row["held-out bits/char, chars masked (unigram)"]
        assert chars_masked == ("—" if char_bpc is None else f"{char_bpc:.3f} ({char_bpc + 0.5:.3f})")
        assert pre["unigram_bits_per_char"] == bpc + 0.25 and pre["unigram_accuracy"] == 0.04
        assert float(row["FLOPs/token"].removesuffix(" M")) == pytest.approx(flops / 1e6, abs=5e-3)
        assert int(row["chars seen"].replace(",", "")) == pre["chars"]
        assert int(row["tokens seen"].replace(",", "")) == pre["tokens"]
        assert float(row["tokens/s"].replace(",", "")) == pytest.approx(pre["tokens_per_s"], abs=0.5)
        assert row["train time"] == "32.0 s"
    assert data["warnings"] == []


def test_verdicts_in_words(report):
    rep, out = report
    md = (out / "report.md").read_text(encoding="utf-8")
    by = {(c.task, c.variant): c for c in rep.comparisons}
    assert set(by) == {(t, v) for t in SCORES for v in ("word", "fusion")}
    word = by["sentiment", "word"]  # −0.10 on every seed: far outside the spread
    assert word.test.distinguishable and word.test.diff == pytest.approx(-0.1)
    assert "larger than the seed spread" in word.text and "word is worse than char on sentiment" in word.text
    same = by["cluener", "fusion"]  # identical scores
    assert not same.test.distinguishable and same.test.p == 1.0
    assert "not distinguishable at this budget" in same.text
    fusion = by["sentiment", "fusion"]  # +0.0033; t = 0.277, p = 1 − t/√(t²+2) ≈ 0.81: within
    d = [0.01, -0.02, 0.02]
    t = statistics.fmean(d) / (statistics.stdev(d) / math.sqrt(3))
    assert fusion.test.p == pytest.approx(1 - t / math.sqrt(t * t + 2), abs=1e-9)
    assert fusion.text == ("fusion − char: +0.0033 accuracy, within the seed spread (paired t over 3 seeds, p≈0.81; "
                           "95% CI -0.0484 … +0.0550): not distinguishable at this budget.")
    for c in rep.comparisons:
        assert f"- {c.text}" in md
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [(c["task"], c["variant"], c["distinguishable"]) for c in data["comparisons"]] == \
        [(c.task, c.variant, c.test.distinguishable) for c in rep.comparisons]


def test_what_pretraining_bought(report):
    """Each variant against its model fine-tuned untrained, paired by seed, in words and in report.json."""
    rep, out = report
    by = {(c.task, c.variant): c for c in rep.gains}
    assert set(by) == {(t, v) for t in SCORES for v in ("char", "word", "fusion")}
    assert all(by[t, v].reference == f"untrained-{v}" for t, v in by)
    char = by["sentiment", "char"]  # +0.10 on every seed
    assert char.test.distinguishable and char.test.diff == pytest.approx(0.1)
    assert "char is better than untrained-char on sentiment" in char.text
    assert not by["sentiment", "fusion"].test.distinguishable  # the same scores as untrained
    assert by["cluener", "word"].test.distinguishable and by["cluener", "word"].test.diff > 0
    assert "## What did pretraining buy?" in rep.markdown and all(f"- {c.text}" in rep.markdown for c in rep.gains)
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [(g["task"], g["variant"], g["reference"], g["distinguishable"]) for g in data["pretraining_gains"]] == \
        [(c.task, c.variant, c.reference, c.test.distinguishable) for c in rep.gains]


def test_seeds_can_differ_by_task(report, tmp_path):
    """A task with seeds of its own (``CompareConfig.task_seeds``): its scores, means and paired tests are over
    those seeds, and the report says which seeds each task had; a compare.json with one list means every task."""
    assert "Fine-tuning seeds: 1, 2, 3 for every task." in report[0].markdown
    runs = make_runs(tmp_path / "runs", task_seeds={"cluener": [7, 8, 9]})
    rep = write_report(runs, tmp_path / "out")
    assert "Fine-tuning seeds: sentiment 1, 2, 3; cluener 7, 8, 9." in rep.markdown
    data = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert data["seeds"] == {"sentiment": SEEDS, "cluener": [7, 8, 9]}
    char = next(v for v in data["variants"] if v["name"] == "char")["finetune"]
    assert char["cluener"]["per_seed"] == dict(zip(["7", "8", "9"], SCORES["cluener"]["char"]))
    assert char["sentiment"]["per_seed"] == dict(zip(["1", "2", "3"], SCORES["sentiment"]["char"]))
    gain = next(c for c in rep.gains if (c.task, c.variant) == ("cluener", "word"))
    diffs = [a - b for a, b in zip(SCORES["cluener"]["word"], CONTROL_SCORES["cluener"]["untrained-word"])]
    assert gain.test.n == 3 and gain.test.diff == pytest.approx(statistics.fmean(diffs))


def test_fairness_equal_budget(report):
    rep, _ = report
    notes = "\n".join(rep.fairness)
    assert "steps: 8 for every variant" in notes and "sequences per step: 32 for every variant" in notes
    assert "Not equal" not in notes
    assert "word ×1.87" in notes  # 2,402,133 / 1,283,797 parameters
    # the masking ablation (fusion trained with char masking) is evaluated on the same held-out masks
    assert "mask rate in training (share of maskable tokens selected): char 15.00%, word 15.00%, fusion 15.00%" \
        in notes
    assert f"held-out evaluation: the same for every variant, whatever its training masking — {EVAL_MASKING}; " \
        "1,776 held-out characters hidden for each" in notes


def test_different_mask_rates_and_held_out_masks_are_flagged(tmp_path):
    runs = make_runs(tmp_path / "runs")
    path = runs / "fusion" / "pretrain" / "export" / "training.json"
    training = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(training | {"mask_rate": 0.1652}), encoding="utf-8")
    metrics = runs / "fusion" / "pretrain" / "metrics.jsonl"
    metrics.write_text(metrics.read_text(encoding="utf-8").replace('"masked_chars": 1776', '"masked_chars": 1520'),
                       encoding="utf-8")
    notes = "\n".join(write_report(runs, tmp_path / "out").fairness)
    assert "**Mask rates differ**: training selected char 15.00%, word 15.00%, fusion 16.52%" in notes
    assert "**Held-out evaluation differs between variants** (characters hidden: char 1,776, word 1,776, " \
        "fusion 1,520)" in notes


def test_unequal_budget_is_flagged(tmp_path):
    rep = write_report(make_runs(tmp_path / "runs", steps={"word": 6}), tmp_path / "out")
    notes = "\n".join(rep.fairness)
    assert "**Not equal — steps differ**: char 8, word 6, fusion 8" in notes
    assert "Characters seen differ" in notes
    assert "Not equal — steps differ" in rep.markdown


def test_plots_are_written(report):
    rep, out = report
    for name in ("pretrain_loss.png", "downstream.png"):
        png = (out / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
        assert width > 300 and height > 300 and len(png) > 10_000
        assert f"]({name})" in rep.markdown
    assert rep.folder == out and all(p.parent == out for p in rep.files)
    assert {p.name for p in rep.files} == {"report.md", "report.json", "pretrain_loss.png", "downstream.png"}


def test_resumed_run_keeps_the_last_record_of_each_step(tmp_path):
    runs = collect(make_runs(tmp_path / "runs", resume="fusion"))
    pre = runs.pretraining["fusion"]
    chars = [c for c, _ in pre.train_curve]
    assert chars == sorted(set(chars)) and len(chars) == 8  # steps 5 and 6 logged twice, kept once
    assert all(bpc < 99 / math.log(2) for _, bpc in pre.train_curve)  # the repeat after the resume wins
    assert pre.resumed == 1 and pre.bits_per_char == PRE["fusion"][2] and pre.eval_step == 8


def test_missing_files_are_named(tmp_path):
    runs = make_runs(tmp_path / "runs")
    (runs / "word" / "finetune" / "cluener" / "seed-2" / "metrics.json").unlink()
    (runs / "fusion" / "pretrain" / "export" / "training.json").unlink()
    with pytest.raises(RunsError, match="2 file") as err:
        write_report(runs, tmp_path / "out")
    message = str(err.value)
    assert re.search(r"word: .*word/finetune/cluener/seed-2/metrics\.json", message)
    assert re.search(r"fusion: .*fusion/pretrain/export/training\.json", message)
    assert not (tmp_path / "out" / "report.md").exists()
    with pytest.raises(RunsError, match="no compare.json"):
        collect(tmp_path)


def test_summary_disagreeing_with_seed_files_is_a_warning(tmp_path):
    runs = make_runs(tmp_path / "runs")
    path = runs / "char" / "finetune" / "sentiment" / "summary.json"
    summary = json.loads(path.read_text(encoding="utf-8"))
    summary["per_seed"] = [0.9, 0.9, 0.9]
    path.write_text(json.dumps(summary), encoding="utf-8")
    rep = write_report(runs, tmp_path / "out")
    assert any("char/sentiment: summary.json" in w for w in rep.runs.warnings)
    assert "## Warnings" in rep.markdown
    assert rep.runs.finetune["sentiment"]["char"].scores == dict(zip(SEEDS, SCORES["sentiment"]["char"]))


def test_pretraining_curves_are_bits_per_char_without_the_pair_loss(tmp_path):
    """The plot's curves compare char and word models in bits per character (a word token stands for several
    characters), and the training curve is the MLM part alone, not the MLM + SOP/NSP loss that was optimised."""
    runs = collect(make_runs(tmp_path / "runs"))
    for name, pre in runs.pretraining.items():
        train = read_metrics(tmp_path / "runs" / name / "pretrain", "train")
        assert pre.train_curve == [(r["chars"], r["mlm_loss"] / math.log(2)) for r in train]
        assert all(y != r["loss"] for (_, y), r in zip(pre.train_curve, train))
        words, single = [b for _, b, _ in pre.eval_curve], [c for _, _, c in pre.eval_curve]
        assert words[-1] == PRE[name][2] and single[-1] == PRE[name][3]
