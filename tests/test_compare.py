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

from zhbert.config import ConfigError, load

ROOT = Path(__file__).parent.parent
TASKS = ["sentiment", "msra_ner"]


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory) -> Path:
    from zhbert.finetune.bundled import build_tasks

    out = tmp_path_factory.mktemp("tasks")
    build_tasks(out, names=TASKS)
    return out


def compare_cmd(built: Path, tasks: Path, out: Path) -> list[str]:
    """A compare config for a minimal budget: 6 pretraining steps, 1 epoch on 96 training examples."""
    (out / "pretrain.toml").write_text(
        f'extends = "{ROOT / "configs/pretrain/tiny.toml"}"\n'
        "steps = 6\nbatch_size = 16\nmicro_batch = 8\nlog_every = 3\neval_every = 3\nsave_every = 6\n"
        "tensorboard = false\n[data]\neval_percent = 5.0\neval_sequences = 32\n")
    (out / "finetune.toml").write_text(f'extends = "{ROOT / "configs/finetune/tiny.toml"}"\nepochs = 1\n'
                                       "max_train = 96\n")
    settings = {"name": "mini", "runs": out / "runs", "reports": out / "reports", "data": built,
                "tasks_dir": tasks, "pretrain": out / "pretrain.toml", "finetune": out / "finetune.toml"}
    variants = [("char", "tiny-char"), ("word", "tiny-word"), ("fusion", "tiny-fusion"),
                ("fusion-pinyin", "tiny-fusion-pinyin")]
    config = out / "mini.toml"
    config.write_text("\n".join([
        *(f'{k} = "{v}"' for k, v in settings.items()), f"tasks = {json.dumps(TASKS)}", "seeds = [1, 2]",
        "ranks = 2", *(f'[[variants]]\nname = "{n}"\nmodel = "configs/model/{m}.toml"' for n, m in variants)]))
    return [sys.executable, "-m", "zhbert", "compare", "--config", str(config)]


@pytest.fixture(scope="module")
def compared(built_data, tasks_dir, tmp_path_factory) -> tuple[Path, str, list[str]]:
    out = tmp_path_factory.mktemp("compare")
    cmd = compare_cmd(built_data, tasks_dir, out)
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
    for variant in ("char", "word", "fusion", "fusion-pinyin"):
        training = json.loads((runs / variant / "pretrain" / "export" / "training.json").read_text())
        assert training["world_size"] == 2 and training["steps"] == 6  # same budget, under the launcher
        assert str(training["parameters"]) in text
        for task in TASKS:
            summary = json.loads((runs / variant / "finetune" / task / "summary.json").read_text())
            assert len(summary["per_seed"]) == 2
            for score in summary["per_seed"]:
                assert json.dumps(score) in text  # every seed's score is in the report, unrounded
    md = (report / "report.md").read_text()
    assert all(v in md for v in ("char", "word", "fusion")) and all(t in md for t in TASKS)
    assert "seed" in md and md.count("|") > 20  # a table, and the seed-spread verdicts


@pytest.mark.slow
def test_a_second_run_redoes_nothing(compared):
    out, _, cmd = compared
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.count(": up to date") == 4 + 4 * len(TASKS)
    assert "$ " not in done.stdout  # no pretraining was launched


def test_compare_config_errors():
    from zhbert.compare import CompareConfig

    with pytest.raises(ConfigError, match="reference 'char' is not a variant"):
        load(CompareConfig, None, ['variants=[{name = "fusion", model = "configs/model/tiny-fusion.toml"}]'])
    with pytest.raises(ConfigError, match="at least 2 seeds"):
        load(CompareConfig, None, ["seeds=[1]"])
    for path in sorted((ROOT / "configs" / "compare").glob("*.toml")):
        cfg = load(CompareConfig, path)
        assert cfg.reference in [v.name for v in cfg.variants] and len(cfg.seeds) >= 3


def test_config_text_keeps_odd_paths_exactly(tmp_path):
    """Paths with quotes, backslashes and non-BMP characters reach the variant's pretrain.toml and the demo's
    compare config unchanged."""
    from zhbert.compare import CompareConfig, Variant, _write_pretrain_toml
    from zhbert.train.config import PretrainConfig

    odd = tmp_path / 'a "quoted" \\ dir 𩸽'
    cfg = CompareConfig(name='it\'s "mini"', data=str(odd), pretrain=str(ROOT / "configs/pretrain/tiny.toml"))
    toml = _write_pretrain_toml(cfg, Variant("char", str(ROOT / "configs/model/tiny-char.toml")), odd / "char")
    pretrain = load(PretrainConfig, toml)
    assert pretrain.data.shards == str(odd / "shards") and pretrain.output == str(odd / "char" / "pretrain")
    assert pretrain.model.embedding == "char" and pretrain.steps == 200
    from zhbert.demo import demo_compare_config

    demo = demo_compare_config(odd)
    assert demo.data == str(odd) and demo.tasks_dir == str(odd / "tasks")
