"""`zhbert compare` end to end at a minimal size: four variants (char, word, fusion, pinyin-only fusion)
pretrained under the deepspeed launcher (two CPU ranks) for the same budget, fine-tuned on two real bundled
tasks with two seeds, and the report — whose numbers must be the ones the runs wrote. A second run redoes
nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zhbert.config import ConfigError, dump_toml, load
from zhbert.train.metrics import read_metrics

ROOT = Path(__file__).parent.parent
TASKS = ["sentiment", "msra_ner"]
SEEDS = {"sentiment": [1, 2], "msra_ner": [2, 3]}  # msra_ner's from the comparison's task_seeds


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory) -> Path:
    from zhbert.finetune.bundled import build_tasks

    out = tmp_path_factory.mktemp("tasks")
    build_tasks(out, names=TASKS)
    return out


def compare_cmd(built: Path, tasks: Path, out: Path, task_names: list[str] = TASKS,
                variants: tuple[tuple[str, str, float], ...] = (
                    ("char", "tiny-char", 1.0), ("word", "tiny-word", 1.0), ("fusion", "tiny-fusion", 1.0),
                    ("fusion-pinyin", "tiny-fusion-pinyin", 0.0)),  # the last one also trains with char masking
                ranks: int = 2, controls: bool = True, task_seeds: dict[str, list[int]] | None = None) -> list[str]:
    """A compare config for a minimal budget: 6 pretraining steps, 1 epoch on 96 training examples, seeds 1 and 2
    (a task in ``task_seeds``: its own)."""
    (out / "pretrain.toml").write_text(dump_toml({
        "extends": str(ROOT / "configs/pretrain/tiny.toml"), "steps": 6, "batch_size": 16, "micro_batch": 8,
        "log_every": 3, "eval_every": 3, "save_every": 6, "tensorboard": False,
        "data": {"eval_percent": 5.0, "eval_sequences": 32}}))
    (out / "finetune.toml").write_text(dump_toml({"extends": str(ROOT / "configs/finetune/tiny.toml"), "epochs": 1,
                                                  "max_train": 96}))
    config = out / "mini.toml"
    config.write_text(dump_toml({
        "name": "mini", "runs": str(out / "runs"), "reports": str(out / "reports"), "data": str(built),
        "tasks_dir": str(tasks), "pretrain": str(out / "pretrain.toml"), "finetune": str(out / "finetune.toml"),
        "tasks": task_names, "seeds": [1, 2], "task_seeds": task_seeds or {}, "ranks": ranks, "controls": controls,
        "variants": [{"name": n, "model": f"configs/model/{m}.toml", "whole_word_prob": w} for n, m, w in variants]}))
    return [sys.executable, "-m", "zhbert", "compare", "--config", str(config)]


@pytest.fixture(scope="module")
def compared(built_data, tasks_dir, tmp_path_factory) -> tuple[Path, str, list[str]]:
    out = tmp_path_factory.mktemp("compare")
    cmd = compare_cmd(built_data, tasks_dir, out, task_seeds={"msra_ner": SEEDS["msra_ner"]})
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, done.stdout, cmd


@pytest.mark.slow
def test_report_numbers_come_from_the_runs(compared):
    out, stdout, _ = compared
    runs, report = out / "runs" / "mini", out / "reports" / "mini"
    for name in ("report.md", "report.json"):
        assert (report / name).exists()
    pngs = sorted(report.glob("*.png"))
    assert len(pngs) >= 2 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000 for p in pngs)
    numbers = json.loads((report / "report.json").read_text())
    text = json.dumps(numbers)
    assert numbers["seeds"] == SEEDS
    for variant in ("char", "word", "fusion", "fusion-pinyin"):
        training = json.loads((runs / variant / "pretrain" / "export" / "training.json").read_text())
        assert training["world_size"] == 2 and training["steps"] == 6  # same budget, under the launcher
        assert str(training["parameters"]) in text
        for task in TASKS:
            summary = json.loads((runs / variant / "finetune" / task / "summary.json").read_text())
            assert summary["seeds"] == SEEDS[task] and len(summary["per_seed"]) == 2
            for seed in SEEDS[task]:  # each seed fine-tuned in a process of its own, with its own log
                log = (runs / variant / "finetune" / task / f"seed-{seed}" / "finetune.log").read_text()
                assert f"seed {seed}: " in log and "epoch 1: train loss" in log
            for score in summary["per_seed"]:
                assert json.dumps(score) in text  # every seed's score is in the report, unrounded
    md = (report / "report.md").read_text()
    assert all(v in md for v in ("char", "word", "fusion")) and all(t in md for t in TASKS)
    assert "seed" in md and md.count("|") > 20  # a table, and the seed-spread verdicts
    # the no-pretraining controls: each model file fine-tuned untrained, with the same seeds
    controls = [f"untrained-tiny-{m}" for m in ("char", "word", "fusion", "fusion-pinyin")]
    assert [c["name"] for c in numbers["controls"]] == controls
    for control in controls:
        training = json.loads((runs / control / "export" / "training.json").read_text())
        assert training["control"] == "no pretraining" and training["steps"] == 0
        for task in TASKS:
            summary = json.loads((runs / control / "finetune" / task / "summary.json").read_text())
            assert summary["seeds"] == SEEDS[task] and all(json.dumps(x) in text for x in summary["per_seed"])
    assert {(g["variant"], g["reference"]) for g in numbers["pretraining_gains"]} == \
        {(v, f"untrained-tiny-{v}") for v in ("char", "word", "fusion", "fusion-pinyin")}
    assert f"{controls[0]} (no pretraining)" in md and "## What did pretraining buy?" in md
    # robustness: every model's seeds scored on the perturbed test split, and the drop paired by seed
    assert "## Robustness" in md
    for v in numbers["variants"] + numbers["controls"]:
        for task in TASKS:
            robust = v["finetune"][task]["robustness"]
            summary = json.loads((runs / v["name"] / "finetune" / task / "summary.json").read_text())
            assert set(robust) == {"homophone", "lookalike"}
            for name, r in robust.items():
                assert list(r["per_seed"].values()) == summary[f"test.{name}"]["per_seed"]
                drops = [summary["per_seed"][i] - p for i, p in enumerate(summary[f"test.{name}"]["per_seed"])]
                assert list(r["drop_per_seed"].values()) == pytest.approx(drops)


@pytest.mark.slow
def test_every_variant_is_evaluated_on_the_same_masks(compared):
    """Whole-word and char-masked training alike (fusion-pinyin trains with char masking): the held-out rows hide
    the same characters for every variant, word model included, and training masked 15 % of maskable tokens."""
    out, _, _ = compared
    runs, notes = out / "runs" / "mini", json.loads((out / "reports" / "mini" / "report.json").read_text())["fairness"]
    evals = {v: read_metrics(runs / v / "pretrain", "eval") for v in ("char", "word", "fusion", "fusion-pinyin")}
    for step in (3, 6):
        hidden = {v: next(r for r in records if r["step"] == step)["masked_chars"] for v, records in evals.items()}
        assert len(set(hidden.values())) == 1 and hidden["char"] > 0, hidden
        single = {v: next(r for r in records if r["step"] == step)["char_masked_chars"]
                  for v, records in evals.items() if v != "word"}
        assert len(set(single.values())) == 1, single
    assert "char_bits_per_char" not in evals["word"][-1]
    for records in evals.values():  # the unigram reference on the same masks, beside every evaluation
        assert all(0 < r["unigram_accuracy"] < 0.2 and r["unigram_bits_per_char"] > 5 for r in records)
    rates = {v: json.loads((runs / v / "pretrain" / "export" / "training.json").read_text())["mask_rate"]
             for v in evals}
    assert all(abs(r - 0.15) < 0.01 for r in rates.values()), rates
    assert any(n.startswith("held-out evaluation: the same for every variant") for n in notes)
    assert any(n.startswith("mask rate in training") for n in notes)


@pytest.mark.slow
def test_a_second_run_redoes_nothing(compared):
    out, _, cmd = compared
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.count(": up to date") == 4 + 4 + 8 * len(TASKS)  # pretraining, controls, fine-tuning
    assert "$ " not in done.stdout  # no pretraining was launched


@pytest.mark.slow
def test_fine_tuning_is_redone_when_the_export_reads_text_differently(compared):
    """The same weights read through another pinyin reader are another input to a fusion model: its fine-tuning
    runs again (before, the key held only the weights, and results made with the old reader were kept)."""
    out, _, cmd = compared
    text = out / "runs" / "mini" / "fusion" / "pretrain" / "export" / "text.json"
    settings = json.loads(text.read_text(encoding="utf-8"))
    assert settings["pinyin"]["reader"] == "context"
    text.write_text(json.dumps(settings | {"pinyin": {"reader": "word"}}), encoding="utf-8")
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
    for task in TASKS:
        assert f"finetune fusion {task}: up to date" not in done.stdout
        assert f"finetune char {task}: up to date" in done.stdout


@pytest.mark.slow
def test_a_task_setting_redoes_that_task_alone(compared):
    """``[tasks.msra_ner]`` in the fine-tuning config redoes msra_ner's runs and keeps sentiment's; a task the
    comparison does not fine-tune is named (a misspelt name would otherwise change nothing, silently)."""
    out, _, cmd = compared
    finetune = out / "finetune.toml"
    finetune.write_text(finetune.read_text() + dump_toml({"tasks": {"msra_ner": {"lr": 2e-3},
                                                                    "msra_nre": {"lr": 1e-4}}}))
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
    assert "finetune char sentiment: up to date" in done.stdout
    assert "finetune char msra_ner: up to date" not in done.stdout
    assert "sets tasks ['idiom_pair', 'msra_nre']" in done.stdout  # idiom_pair: configs/finetune/tiny.toml's own


@pytest.fixture(scope="module")
def clue_tasks(tmp_path_factory) -> Path:
    """An AFQMC folder as CLUE distributes it — train/dev/test.json, test without labels, no manifest.json —
    made of rows of the bundled idiom_pair task, which has the same layout."""
    from zhbert.finetune.bundled import build_tasks

    bundled, out = tmp_path_factory.mktemp("bundled"), tmp_path_factory.mktemp("clue")
    build_tasks(bundled, names=["idiom_pair"])
    (out / "afqmc").mkdir()
    for split, n in (("train", 96), ("dev", 64), ("test", 64)):
        rows = [json.loads(line) for line in (bundled / "idiom_pair" / f"{split}.json").open(encoding="utf-8")][:n]
        if split == "test":
            rows = [{k: v for k, v in row.items() if k != "label"} for row in rows]
        (out / "afqmc" / f"{split}.json").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                     encoding="utf-8")
    return out


@pytest.mark.slow
def test_a_clue_task_folder_and_no_word_view(built_data, clue_tasks, tmp_path):
    """A registered CLUE task in its own folder (no `zhbert tasks build` manifest) and data without shards-word/,
    which no variant here needs: the comparison runs, and fine-tuning is keyed by the task files' content."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("vocab", "glyphs", "shards"):
        (data / name).symlink_to(built_data / name)
    cmd = compare_cmd(data, clue_tasks, tmp_path, ["afqmc"], (("char", "tiny-char", 1.0),), ranks=1, controls=False)
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = tmp_path / "runs" / "mini" / "char" / "finetune" / "afqmc"
    summary = json.loads((runs / "summary.json").read_text())
    assert summary["split"] == "dev" and len(summary["per_seed"]) == 2  # CLUE's test labels are not public
    assert len((runs / "seed-1" / "afqmc_predict.json").read_text().splitlines()) == 64
    assert (tmp_path / "reports" / "mini" / "report.md").exists()

    with (clue_tasks / "afqmc" / "dev.json").open("a", encoding="utf-8") as f:  # new task data, same paths
        f.write(json.dumps({"id": 64, "sentence1": "一心一意", "sentence2": "心思、意念专一。", "label": "1"},
                           ensure_ascii=False) + "\n")
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
    assert "── pretrain char: up to date" in again.stdout and "finetune char afqmc: up to date" not in again.stdout


def test_compare_config_errors():
    from zhbert.compare import CompareConfig

    with pytest.raises(ConfigError, match="reference 'char' is not a variant"):
        load(CompareConfig, None, ['variants=[{name = "fusion", model = "configs/model/tiny-fusion.toml"}]'])
    with pytest.raises(ConfigError, match="at least 2 seeds"):
        load(CompareConfig, None, ["seeds=[1]"])
    with pytest.raises(ConfigError, match="at least 2 seeds per task"):
        load(CompareConfig, None, ["task_seeds={msra_ner = [3, 3]}"])
    with pytest.raises(ConfigError, match=r"task_seeds names \['cluener'\], which are not among the tasks"):
        load(CompareConfig, None, ["task_seeds={cluener = [1, 2]}"])
    for path in sorted((ROOT / "configs" / "compare").glob("*.toml")):
        cfg = load(CompareConfig, path)
        assert cfg.reference in [v.name for v in cfg.variants] and all(len(cfg.seeds_for(t)) >= 3 for t in cfg.tasks)
        # the demo builds the word view only for a comparison with a word-level model
        assert cfg.reads_word_view() == any(v.name.startswith("word") for v in cfg.variants), path.name
    assert not load(CompareConfig, None).reads_word_view()


def test_config_text_keeps_odd_paths_exactly(tmp_path):
    """Paths with quotes, backslashes and non-BMP characters reach the variant's pretrain.toml and the demo's
    compare config unchanged."""
    from zhbert.compare import CompareConfig, VariantConfig, _write_pretrain_toml
    from zhbert.layout import RunDir
    from zhbert.train.config import PretrainConfig

    odd = tmp_path / 'a "quoted" \\ dir 𩸽'
    cfg = CompareConfig(name='it\'s "mini"', data=str(odd), pretrain=str(ROOT / "configs/pretrain/tiny.toml"))
    toml = _write_pretrain_toml(cfg, VariantConfig("char", str(ROOT / "configs/model/tiny-char.toml")),
                                RunDir(odd / "char" / "pretrain"))
    pretrain = load(PretrainConfig, toml)
    assert pretrain.data.shards == str(odd / "shards") and pretrain.output == str(odd / "char" / "pretrain")
    assert pretrain.model.embedding == "char" and pretrain.steps == 800 and pretrain.model.position == "rope"
    from zhbert.demo import demo_compare_config

    demo = demo_compare_config(odd)
    assert demo.data == str(odd) and demo.tasks_dir == str(odd / "tasks")
