"""Pretraining: the ds_config derived from the typed config, data per rank, bad input before any training,
and real multi-process DeepSpeed runs on the CPU (gloo): ZeRO-1/2/3 through the `deepspeed` launcher, torchrun,
one plain process, SIGKILL + resume, and the export folder loaded in a fresh process without DeepSpeed."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from zhbert.config import ConfigError, load
from zhbert.train.config import PretrainConfig
from zhbert.train.metrics import read_metrics
from zhbert.train.pretrain import lr_lambda

ROOT = Path(__file__).parent.parent
TINY_FUSION = ROOT / "configs" / "pretrain" / "tiny-fusion.toml"
STEPS = 12


def tiny(built: Path, out: Path, config: Path = TINY_FUSION, **overrides: object) -> list[str]:
    """Overrides that point a tiny config at the test data and keep the run short."""
    shards = "shards-word" if "word" in config.name else "shards"
    base = {"output": str(out), "data.shards": str(built / shards), "data.vocab": str(built / "vocab"),
            "data.glyphs": str(built / "glyphs"), "data.eval_percent": 5.0, "data.eval_sequences": 64,
            "steps": STEPS, "batch_size": 16, "micro_batch": 8, "log_every": 1, "eval_every": 6, "save_every": 4,
            "optim.lr": 2e-3, "optim.warmup_steps": 2, "tensorboard": False}
    return [f"--{k}={json.dumps(v)}" for k, v in (base | overrides).items()]


def launch(cmd: list[str], env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    env = os.environ | {"DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"} | (env or {})
    env.setdefault("TORCH_EXTENSIONS_DIR", str(ROOT / ".venv" / "torch_extensions"))
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **popen)


def deepspeed_cmd(port: int, args: list[str]) -> list[str]:
    launcher = Path(sys.executable).parent / "deepspeed"
    return [str(launcher), "--num_gpus", "2", "--master_port", str(port), "--module", "zhbert", "pretrain",
            "--config", str(TINY_FUSION), *args]


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]
    return out


def losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run, "train")}


# ── the config and the ds_config ─────────────────────────────────────────────────────────────────────────────

def test_ds_config_is_derived_from_the_training_config(tmp_path):
    from zhbert.train.engine import build_ds_config

    cfg = load(PretrainConfig, TINY_FUSION, ["--engine.zero_stage=2", "--engine.precision=bf16"])
    built = build_ds_config(cfg, world_size=1)
    assert (built["train_batch_size"], built["train_micro_batch_size_per_gpu"], built["gradient_accumulation_steps"]) \
        == (32, 16, 2)
    assert built["zero_optimization"] == {"stage": 2} and built["bf16"] == {"enabled": True}
    assert built["gradient_clipping"] == cfg.optim.clip and "optimizer" not in built
    assert build_ds_config(cfg, world_size=2)["gradient_accumulation_steps"] == 1

    user = tmp_path / "ds.json"
    user.write_text(json.dumps({"zero_optimization": {"stage": 2, "overlap_comm": True}, "wall_clock_breakdown": True}))
    merged = build_ds_config(dataclasses.replace(cfg, engine=dataclasses.replace(cfg.engine, ds_config=str(user))), 1)
    assert merged["zero_optimization"] == {"stage": 2, "overlap_comm": True} and merged["wall_clock_breakdown"]

    for bad, names in (({"zero_optimization": {"stage": 3}}, ["zero_optimization.stage = 3", "engine.zero_stage"]),
                       ({"train_batch_size": 64}, ["train_batch_size = 64", "32", "batch_size"]),
                       ({"optimizer": {"type": "AdamW", "params": {"lr": 1}}}, ["optimizer.type", "[optim]"]),
                       ({"fp16": {"enabled": True}}, ["fp16.enabled", "fp16 is not offered"])):
        user.write_text(json.dumps(bad))
        with pytest.raises(ConfigError) as e:
            build_ds_config(dataclasses.replace(cfg, engine=dataclasses.replace(cfg.engine, ds_config=str(user))), 1)
        assert all(n in str(e.value) for n in names), str(e.value)


def test_batch_size_must_divide_over_ranks_and_micro_batches():
    cfg = load(PretrainConfig, TINY_FUSION)
    assert cfg.accumulation(2) == 1
    with pytest.raises(ConfigError, match=r"batch_size 32 does not divide into micro_batch 16 × 3 rank\(s\)"):
        cfg.accumulation(3)


def test_lr_schedule_warms_up_then_decays():
    cfg = load(PretrainConfig, TINY_FUSION, ["--steps=110", "--optim.warmup_steps=10", "--optim.min_lr_ratio=0.1"])
    f = lr_lambda(cfg)
    assert [f(0), f(4), f(9)] == pytest.approx([0.1, 0.5, 1.0])
    assert f(60) == pytest.approx(0.55) and f(110) == pytest.approx(0.1)
    cos = lr_lambda(load(PretrainConfig, TINY_FUSION, ["--steps=110", "--optim.warmup_steps=10",
                                                        "--optim.schedule=cosine"]))
    assert cos(60) == pytest.approx(0.5) and cos(10) == pytest.approx(1.0) and cos(110) == pytest.approx(0.0)


def test_configs_extend_a_shared_file_and_pick_a_model():
    for kind in ("char", "word", "fusion"):
        for size in ("tiny", "base"):
            cfg = load(PretrainConfig, ROOT / "configs" / "pretrain" / f"{size}-{kind}.toml")
            assert cfg.model.embedding == kind and cfg.output.endswith(f"{size}-{kind}")
    assert load(PretrainConfig, TINY_FUSION).model.hidden_size == 64


# ── data per rank ────────────────────────────────────────────────────────────────────────────────────────────

def test_each_rank_reads_its_own_rows_of_each_step(built_data, tmp_path):
    from zhbert.train.data import PretrainData

    cfg = load(PretrainConfig, TINY_FUSION, tiny(built_data, tmp_path))
    ranks = [PretrainData(cfg, r, 2) for r in (0, 1)]
    alone = PretrainData(cfg, 0, 1)
    docs = lambda rows: [(tuple(r["doc_ids"]), tuple(r["input_ids"])) for r in rows]  # noqa: E731
    for step in (0, 5, 10_000):  # 10,000 steps is many epochs of this small slice
        r0, r1 = docs(ranks[0].rows(step, 0)), docs(ranks[1].rows(step, 0))
        assert len(r0) == len(r1) == cfg.micro_batch and not set(r0) & set(r1)
        assert r0 + r1 == docs(alone.rows(step, 0)) + docs(alone.rows(step, 1))  # same step, same sequences
        assert r0 == docs(PretrainData(cfg, 0, 2).rows(step, 0))  # a function of the step alone
    held = {d for _, b in ranks[0].eval_batches() + ranks[1].eval_batches() for r in b for d in r["doc_ids"]}
    train = set(ranks[0].dataset.select(ranks[0].train_rows)["doc_id"])
    assert held and not held & train
    assert len(ranks[0].eval_batches()) == len(ranks[1].eval_batches()) > 0
    # each held-out row keeps its place (which keys its evaluation masks) whatever the ranks
    placed = lambda data: {p: tuple(r["doc_ids"]) for places, rows in data.eval_batches() for p, r in zip(places, rows)}  # noqa: E731
    assert placed(ranks[0]) | placed(ranks[1]) == placed(alone) and len(placed(alone)) == alone.eval_sequences


def test_join_packs_keeps_one_cls_and_runs_word_ids_on():
    from zhbert.train.data import join_packs

    a = {"input_ids": [2, 10, 11, 12, 3], "word_ids": [-1, 0, 0, 1, -1], "pinyin_ids": [0, 5, 6, 7, 0]}
    b = {"input_ids": [2, 13, 14, 3], "word_ids": [-1, 0, 1, -1], "pinyin_ids": [0, 8, 9, 0]}
    c = {"input_ids": [2, 15, 3], "word_ids": [-1, 0, -1], "pinyin_ids": [0, 4, 0]}
    columns = {k: np.array(a[k] + b[k] + c[k]) for k in a}  # packs: (a, b) and (c)
    packed, lengths = join_packs(columns, np.array([5, 4, 3]), np.array([2, 1]), documents=True)
    assert {k: v.tolist() for k, v in packed.items()} == {
        "input_ids": [2, 10, 11, 12, 3, 13, 14, 3] + c["input_ids"],
        "word_ids": [-1, 0, 0, 1, -1, 2, 3, -1] + c["word_ids"],
        "pinyin_ids": [0, 5, 6, 7, 0, 8, 9, 0] + c["pinyin_ids"],
        "document": [1, 1, 1, 1, 1, 2, 2, 2] + [1, 1, 1]}
    assert lengths.tolist() == [8, 3]


# the rows and masks as the code before zhbert.train.loader made them (dataset[idx] → Python lists, one joined
# pack at a time, a padding loop, the greedy unit loop run to the end): the fast path must give exactly these

def reference_join_rows(rows: list[dict], documents: bool) -> dict:
    keys = [k for k in ("input_ids", "word_ids", "pinyin_ids") if k in rows[0]]
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys + ["document"] * documents}
    words = 0
    for j, row in enumerate(rows):
        cut = slice(0 if j == 0 else 1, None)
        w = np.asarray(row["word_ids"][cut], np.int64)
        for k in keys:
            parts[k].append(np.where(w >= 0, w + words, -1) if k == "word_ids" else np.asarray(row[k][cut], np.int64))
        if documents:
            parts["document"].append(np.full(len(w), j + 1, np.int64))
        words += int(w.max(initial=-1)) + 1
    return {k: np.concatenate(v).tolist() for k, v in parts.items()} | {"doc_ids": [r["doc_id"] for r in rows]}


def reference_rows(data, step: int, micro: int) -> list[dict]:
    mb, n = data.cfg.micro_batch, data.train_sequences
    start = step * data.cfg.batch_size + (micro * data.world_size + data.rank) * mb
    which = [int(data._order_of(p // n)[p % n]) for p in range(start, start + mb)]  # the order is unchanged
    rows, offsets = data.train
    spans = [(int(offsets[i]), int(offsets[i + 1])) for i in which]
    cols = data.dataset[np.concatenate([rows[a:b] for a, b in spans]).tolist()]
    cols.pop("char_len", None)
    flat = [dict(zip(cols, values)) for values in zip(*cols.values())]
    if not data.cfg.data.pack:
        return flat
    out, at = [], 0
    for a, b in spans:
        out.append(reference_join_rows(flat[at:at + b - a], data.cfg.data.pack_attention == "within"))
        at += b - a
    return out


def reference_select(unit, weight, target, draw):
    B, T = unit.shape
    row = np.broadcast_to(np.arange(B)[:, None], (B, T))
    size = np.zeros((B, T), np.int64)
    np.add.at(size, (row[unit >= 0], unit[unit >= 0]), weight[unit >= 0])
    present = np.zeros((B, T), bool)
    present[row[unit >= 0], unit[unit >= 0]] = True
    order = np.argsort(np.where(present, draw, np.inf), axis=1, kind="stable")
    size_in_order = np.take_along_axis(size, order, 1)
    present_in_order = np.take_along_axis(present, order, 1)
    take = np.zeros((B, T), bool)
    covered = np.zeros(B, np.int64)
    for k in range(int(present.sum(1).max(initial=0))):
        fits = present_in_order[:, k] & (covered + size_in_order[:, k] <= target)
        take[:, k] = fits
        covered += np.where(fits, size_in_order[:, k], 0)
    take[:, 0] |= (covered == 0) & present_in_order[:, 0]
    selected = np.zeros((B, T), bool)
    np.put_along_axis(selected, order, take, 1)
    return (unit >= 0) & np.take_along_axis(selected, np.maximum(unit, 0), 1)


def reference_pad(rows, key, value):
    T = max(len(r[key]) for r in rows)
    out = np.full((len(rows), T), value, np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r[key])] = r[key]
    return out


def test_fast_rows_and_collation_give_the_batches_of_the_reference(built_data, tmp_path):
    """Rows gathered from the Arrow chunks and joined in numpy, padded and masked by the vectorised collator, are
    exactly the rows and batches of the reference (Python lists, one pack at a time): packed with attention across
    or within rows, unpacked, and the word view."""
    from zhbert.train.data import PretrainData, load_vocabs
    from zhbert.train.masking import MaskingCollator

    class ReferenceCollator(MaskingCollator):
        _select, _pad = staticmethod(reference_select), staticmethod(reference_pad)

    settings = [(TINY_FUSION, {}), (TINY_FUSION, {"data.pack_attention": "within"}),
                (TINY_FUSION, {"data.pack": False}), (ROOT / "configs" / "pretrain" / "tiny-word.toml", {})]
    for config, overrides in settings:
        cfg = load(PretrainConfig, config, tiny(built_data, tmp_path, config, **overrides))
        data, vocabs = PretrainData(cfg, 1, 2), load_vocabs(cfg)
        fast, reference = (c(cfg.masking, vocabs.char, vocabs.pinyin, vocabs.tokens)
                           for c in (MaskingCollator, ReferenceCollator))
        for step, micro in ((0, 0), (7, 1), (10_000, 0)):
            rows, expected = data.rows(step, micro), reference_rows(data, step, micro)
            assert [{k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in r.items()} for r in rows] \
                == expected, (config.name, overrides, step)
            got, want = fast(rows, step, 1, micro), reference(expected, step, 1, micro)
            assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_unit_selection_matches_the_reference_loop():
    """The greedy selection that stops once no unit fits anywhere picks what the loop run to the end picks, on
    random rows of words (weights 0-3, as characters per token; some rows with nothing maskable)."""
    from zhbert.train.masking import MaskingCollator

    rng = np.random.default_rng(0)
    for _ in range(200):
        B, T = 8, int(rng.integers(1, 60))
        word_ids = np.maximum(np.cumsum(rng.random((B, T)) < 0.6, axis=1) - 1, 0)  # runs share a word id < T
        unit = np.where(rng.random((B, T)) < 0.9, word_ids, -1)
        unit[rng.random(B) < 0.1] = -1
        weight, draw = rng.integers(0, 4, (B, T)), rng.random((B, T))
        target = np.maximum(1, np.rint(0.15 * rng.integers(0, 3 * T + 1, B)))
        assert np.array_equal(MaskingCollator._select(unit, weight, target, draw),
                              reference_select(unit, weight, target, draw))


def test_data_workers_give_the_batches_of_the_training_thread(built_data, tmp_path):
    """data.workers = 2 yields exactly the micro-batches of the in-thread path (data.workers = 0), in order, from
    any start step, so a resumed run reads what an unbroken one reads; closing the batches mid-run (as an error in
    the loop does) stops the workers at once."""
    from zhbert.train.data import PretrainData, load_vocabs
    from zhbert.train.loader import train_batches
    from zhbert.train.masking import MaskingCollator

    def batches(workers: int, start: int):
        cfg = load(PretrainConfig, TINY_FUSION, tiny(built_data, tmp_path, **{"data.workers": workers}))
        vocabs = load_vocabs(cfg)
        collator = MaskingCollator(cfg.masking, vocabs.char, vocabs.pinyin, vocabs.tokens)
        return train_batches(PretrainData(cfg, 1, 2), collator, start, 8, 2, "cpu")  # rank 1, 2 micro-batches

    in_thread = list(batches(0, 0))
    assert len(in_thread) == 16 and not multiprocessing.active_children()
    for start in (0, 3):
        in_workers = list(batches(2, start))
        assert len(in_workers) == len(in_thread) - 2 * start
        for got, want in zip(in_workers, in_thread[2 * start:]):
            assert got.keys() == want.keys()
            assert all(got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]) for k in want)
    with contextlib.closing(batches(2, 0)) as running:
        next(running)
        assert len(multiprocessing.active_children()) == 2
    assert not multiprocessing.active_children()


def test_packed_sequences_are_full_and_the_same_text_in_both_views(built_data, tmp_path):
    """Packing fills ≥ 95 % of the computed positions with real tokens (the fixture's rows of ≤ 64 tokens average
    far less), every training row lands in exactly one sequence, and the word view packs the same rows in the same
    order, so a word model reads the same text at every step as a char model (and is evaluated on it)."""
    from zhbert.data.tokenizer import surface
    from zhbert.train.data import PretrainData, load_vocabs
    from zhbert.train.masking import MaskingCollator

    views = {}
    for kind in ("char", "word"):
        config = ROOT / "configs" / "pretrain" / f"tiny-{kind}.toml"
        for pack in (True, False):
            cfg = load(PretrainConfig, config, tiny(built_data, tmp_path, config, **{"data.pack": pack}))
            views[kind, pack] = cfg, PretrainData(cfg, 0, 1), load_vocabs(cfg)
    cfg, data, vocabs = views["char", True]
    rows, offsets = data.train
    assert sorted(rows.tolist()) == sorted(data.train_rows.tolist())
    collator = MaskingCollator(cfg.masking, vocabs.char, vocabs.pinyin)

    def real_share(data: PretrainData) -> float:
        masks = [collator(data.rows(step, m), step)["attention_mask"] for step in range(4) for m in range(2)]
        return sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)

    assert real_share(data) >= 0.95 and data.real_fraction() >= 0.95
    assert real_share(views["char", False][1]) < 0.75  # the same rows unpacked: a quarter or more is padding
    assert all(len(r["input_ids"]) <= 128 for step in range(4) for r in data.rows(step, 0))

    def text(view: str, rows: list[dict]) -> list[tuple[list[str], str]]:
        tokens = views[view, True][2].tokens
        return [(r["doc_ids"], surface(tokens, r["input_ids"])) for r in rows]

    word = views["word", True][1]
    assert word.train_sequences == data.train_sequences
    for step in (0, 3, 500):
        assert text("char", data.rows(step, 1)) == text("word", word.rows(step, 1))
    for (keys, char_rows), (word_keys, word_rows) in zip(data.eval_batches(), word.eval_batches(), strict=True):
        assert keys == word_keys and text("char", char_rows) == text("word", word_rows)
        # words are numbered alike, so the held-out masking hides the same characters in both views
        assert [max(r["word_ids"]) for r in char_rows] == [max(r["word_ids"]) for r in word_rows]


# ── bad input: a clear error before any training starts ──────────────────────────────────────────────────────

def test_bad_inputs_fail_before_training(built_data, tmp_path, vocab_dir):
    from zhbert.train.pretrain import pretrain

    def run(*overrides: str, config: Path = TINY_FUSION) -> str:
        cfg = load(PretrainConfig, config, tiny(built_data, tmp_path / "run") + list(overrides))
        with pytest.raises((ValueError, FileNotFoundError, RuntimeError)) as e:
            pretrain(cfg)
        return str(e.value)

    assert "prepared with another vocab" in run(f"--data.vocab={json.dumps(str(vocab_dir))}")
    assert "no manifest.json" in run(f"--data.shards={json.dumps(str(tmp_path / 'nowhere'))}")
    assert "no glyphs.npy" in run(f"--data.glyphs={json.dumps(str(tmp_path))}")
    assert "4 fonts at 24px, but model.num_fonts = 3" in run("--model.num_fonts=3")
    assert "a word model trains on zhbert.word_view/2" in run("--model.embedding=word", "--model.word_vocab_size=99999")
    assert "does not divide" in run("--batch_size=20")
    # the rows must fit the model's positions, a sentence pair's extra [SEP] included
    assert "rows of up to 64 tokens = 64 positions, but model.max_position is 48" in run("--model.max_position=48")
    assert "rows of up to 64 tokens + 1 [SEP] for masking.pairs = 'sop' = 65 positions, but model.max_position is 64" \
        in run("--model.max_position=64", '--masking.pairs="sop"', '--model.pair_head="sop"', "--data.pack=false")
    assert "rows of up to 64 tokens do not fit in data.pack_len = 32" in run("--data.pack_len=32")
    with pytest.raises(ConfigError, match="masking.pairs = 'sop' needs data.pack = false"):
        load(PretrainConfig, TINY_FUSION, ['--masking.pairs="sop"', '--model.pair_head="sop"'])
    with pytest.raises(ConfigError, match=r"save_every \(5\) must be a multiple of log_every \(2\)"):
        load(PretrainConfig, TINY_FUSION, ["--log_every=2", "--save_every=5"])
    assert not (tmp_path / "run").exists()  # nothing was started

    cli = [sys.executable, "-m", "zhbert", "pretrain", "--config", str(TINY_FUSION), "--stepz=3"]
    done = subprocess.run(cli, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "unknown key(s) stepz" in done.stderr


# ── real runs: two processes through the launchers ───────────────────────────────────────────────────────────

@pytest.fixture(scope="module")
def runs(built_data, tmp_path_factory) -> dict[str, Path]:
    """ZeRO-1, -2 and -3 through `deepspeed --num_gpus 2`, one after the other (2 cores)."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for stage in (1, 2, 3):
        out[f"zero{stage}"] = root / f"zero{stage}"
        for stale in Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_{29510 + stage}_*"):  # an older run's
            stale.unlink()
        finish(launch(deepspeed_cmd(29510 + stage, tiny(built_data, out[f"zero{stage}"], **{
            "engine.zero_stage": stage}))))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_zero_stages_train_on_two_ranks_that_agree(runs, stage):
    run = runs[f"zero{stage}"]
    training = json.loads((run / "export" / "training.json").read_text())
    assert training["world_size"] == 2 and training["ds_config"]["zero_optimization"]["stage"] == stage
    fingerprints = training["rank_fingerprints"]
    assert len(fingerprints) == 2 and fingerprints[0] == fingerprints[1]  # the ranks hold the same model
    train, evals = losses(run), read_metrics(run, "eval")
    assert sorted(train) == list(range(1, STEPS + 1)) and [e["step"] for e in evals] == [6, 12]
    assert evals[-1]["mlm_loss"] < evals[0]["mlm_loss"] < train[1]  # the loss falls
    assert 0 < evals[-1]["bits_per_char"] and 0 <= evals[-1]["accuracy"] <= 1
    memory = training["memory_per_rank"]
    assert len(memory) == 2 and memory[0]["optimizer_moments"] > 0
    fraction = training["real_token_fraction"]
    assert 0 < fraction < 1 and fraction == pytest.approx(training["tokens"] / training["positions"])
    assert all(0 < r["real_token_fraction"] <= 1 for r in read_metrics(run, "train"))
    # DeepSpeed's CPU allreduce buffers (66 MB of RAM each in /dev/shm) do not outlive the run
    assert not list(Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_{29510 + stage}_*"))
    if stage > 1:  # ZeRO-1 and -2 compute the same updates; ZeRO-3 the same up to float order
        reference = losses(runs["zero1"])
        assert all(train[s] == pytest.approx(reference[s], rel=0 if stage == 2 else 1e-4) for s in train)


@pytest.mark.slow
def test_zero3_partitions_parameters(runs):
    full = json.loads((runs["zero1"] / "export" / "training.json").read_text())["memory_per_rank"][0]
    part = json.loads((runs["zero3"] / "export" / "training.json").read_text())["memory_per_rank"][0]
    assert part["parameters"] == pytest.approx(full["parameters"] / 2, rel=0.01)


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_same_losses(runs, built_data, tmp_path):
    """Kill both ranks (SIGKILL, no clean-up) once a checkpoint exists, resume, and compare every later step
    with the uninterrupted ZeRO-1 run of the same config."""
    run = tmp_path / "killed"
    args = tiny(built_data, run, **{"engine.zero_stage": 1})
    proc = launch(deepspeed_cmd(29521, args))
    latest = run / "checkpoints" / "latest"
    deadline = time.time() + 300
    while not latest.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    resumed_from = int(latest.read_text().removeprefix("step-"))
    assert resumed_from < STEPS and not (run / "export").exists(), "the run finished before it could be killed"

    out = finish(launch(deepspeed_cmd(29522, [*args, "--resume"])))
    assert f"resuming at step {resumed_from}" in out
    reference, after = losses(runs["zero1"]), losses(run)
    later = [s for s in reference if s > resumed_from]
    assert later and [after[s] for s in later] == [reference[s] for s in later]  # exactly


@pytest.mark.slow
def test_export_loads_in_a_fresh_process_without_deepspeed(runs):
    export = runs["zero3"] / "export"
    code = f"""
import sys, torch
from zhbert.export import load_export
from zhbert.model import ZhBertForPretraining, ZhBertForSequenceClassification
e = load_export({str(export)!r})
model = ZhBertForPretraining.from_pretrained(e.folder).eval()
ids = torch.tensor([e.vocab.tokenizer.encode("银行在北京").ids])
out = model(ids, torch.ones_like(ids), pinyin_ids=torch.full_like(ids, 3))
assert torch.isfinite(out.logits).all() and out.logits.shape == (1, ids.shape[1], e.model.vocab_size)
ZhBertForSequenceClassification.from_pretrained(e.folder, num_labels=2)
assert "deepspeed" not in sys.modules
print(e.model.embedding, sorted(p.name for p in e.folder.iterdir()))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert "fusion" in done.stdout and "glyphs.json" in done.stdout and "tokenizer.json" in done.stdout
    assert "text.json" in done.stdout and "has no text.json" not in done.stderr


def read_until_exit(proc: subprocess.Popen, error: str, limit: float = 400) -> tuple[str, float | None]:
    """All of a process's output, and when ``error`` first appeared in it; killed after ``limit`` seconds."""
    hung = threading.Timer(limit, os.killpg, (proc.pid, signal.SIGKILL))  # far beyond a 2-step run
    hung.start()
    lines, seen = [], None
    for line in proc.stdout:
        lines.append(line)
        if seen is None and error in line:
            seen = time.time()
    proc.wait()
    hung.cancel()
    return "".join(lines), seen


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["deepspeed", "plain"])
def test_a_failure_on_rank_0_ends_every_rank_with_the_error(built_data, tmp_path, launcher):
    """Rank 0 cannot write the export (a file sits where the folder goes) while rank 1 has only the end of the run
    left. Every rank must end, non-zero, within seconds, showing rank 0's error: under the deepspeed launcher, and
    as plain processes started by a scheduler (srun, a hostfile) that stops nobody, where each rank speaks for
    itself."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "export").write_text("in the way")
    args = ["pretrain", "--config", str(TINY_FUSION),
            *tiny(built_data, run, steps=2, log_every=1, eval_every=2, save_every=2)]
    error = str(run / "export")  # rank 0's error names it; rank 1 must quote it
    if launcher == "deepspeed":
        ranks = [launch(deepspeed_cmd(29541, args[3:]))]
    else:
        env = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29543"}
        ranks = [launch([sys.executable, "-m", "zhbert", *args], env | {"RANK": r, "LOCAL_RANK": r})
                 for r in ("0", "1")]
    outputs = []
    for proc in ranks:
        out, seen = read_until_exit(proc, error)
        assert seen is not None and proc.returncode != 0 and time.time() - seen < 30, out[-4000:]
        outputs.append(out)
    if launcher == "plain":
        assert all(f"rank {rank} of 2: error:" in out for rank, out in enumerate(outputs))


@pytest.mark.slow
def test_torchrun_and_a_single_process_run_too(built_data, tmp_path):
    """The same entry point under torchrun (char model, no ZeRO) and alone (word model)."""
    torchrun = Path(sys.executable).parent / "torchrun"
    char = tmp_path / "char"
    finish(launch([str(torchrun), "--nproc_per_node", "2", "--master_port", "29531", "-m", "zhbert", "pretrain",
                   "--config", str(ROOT / "configs/pretrain/tiny-char.toml"),
                   *tiny(built_data, char, ROOT / "configs/pretrain/tiny-char.toml",
                         **{"engine.zero_stage": 0, "steps": 4})]))
    training = json.loads((char / "export" / "training.json").read_text())
    assert training["world_size"] == 2 and training["rank_fingerprints"][0] == training["rank_fingerprints"][1]

    word, config = tmp_path / "word", ROOT / "configs/pretrain/tiny-word.toml"
    out = finish(launch([sys.executable, "-m", "zhbert", "pretrain", "--config", str(config),
                         *tiny(built_data, word, config, steps=4)]))
    assert "example:" in out and "│" in out
    training = json.loads((word / "export" / "training.json").read_text())
    assert training["world_size"] == 1 and training["config"]["model"]["embedding"] == "word"
    assert (word / "export" / "word_vocab.txt").exists() and read_metrics(word, "eval")[-1]["bits_per_char"] > 0
    prep = json.loads((built_data / "shards" / "manifest.json").read_text())["config"]  # the word view's char view
    text = json.loads((word / "export" / "text.json").read_text())
    assert (text["normalize"], text["segment"]) == (prep["normalize"], prep["segment"])


@pytest.mark.slow
def test_a_run_with_data_workers_trains(built_data, tmp_path):
    """data.workers = 2 in a real run (one plain process): it trains, exports and ends, its workers with it (the
    output pipe, which they inherit, closes)."""
    run = tmp_path / "workers"
    finish(launch([sys.executable, "-m", "zhbert", "pretrain", "--config", str(TINY_FUSION),
                   *tiny(built_data, run, steps=4, eval_every=4, **{"data.workers": 2})]))
    train = read_metrics(run, "train")
    assert [r["step"] for r in train] == [1, 2, 3, 4] and all(r["loss"] > 0 for r in train)
    assert (run / "export" / "model.safetensors").exists()


@pytest.mark.slow
def test_a_compiled_engine_trains(built_data, tmp_path):
    """engine.compile = true: the fusion model compiled inside DeepSpeed with fullgraph=True (so a graph break
    fails here), trained, evaluated and exported in one plain process."""
    run = tmp_path / "compiled"
    finish(launch([sys.executable, "-m", "zhbert", "pretrain", "--config", str(TINY_FUSION),
                   *tiny(built_data, run, steps=2, **{"engine.compile": True})]))
    train = read_metrics(run, "train")
    assert [r["step"] for r in train] == [1, 2] and all(r["loss"] > 0 for r in train)
    assert read_metrics(run, "eval")[-1]["bits_per_char"] > 0 and (run / "export" / "model.safetensors").exists()
