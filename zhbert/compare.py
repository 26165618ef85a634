"""`zhbert compare`: the question the project exists to answer — do glyph and pinyin help a Chinese encoder, and
does whole-word masking — asked under one budget.

Every variant pretrains from the same shared pretraining config (same steps, sequences per step, documents,
optimizer) and differs only in its model file and masking; each is then fine-tuned on the same tasks with the
same seeds, and zhbert.report writes the table, plots and the seed-spread verdicts. Each pretraining run goes
through the real launcher (``deepspeed --num_gpus ranks``) as a user would start it, with its resolved config
written beside it; every step is keyed by the hash of what determines it, so a re-run redoes only what changed
and an interrupted pretraining run resumes from its last checkpoint. Keys hold data by content: the manifest of the
shards a variant trains on, the pretrained weights and the task folder's files.

Controls: each model file of the comparison is also fine-tuned untrained (its weights as a pretraining run of it
starts), with the same seeds, so the report can say what pretraining bought on each task.

Layout: ``<runs>/<name>/compare.json``, ``<variant>/pretrain.toml``, ``<variant>/pretrain/`` (run folder with
export/), ``<variant>/finetune/<task>/`` (per seed and summary.json), ``untrained-<model>/export/`` and
``untrained-<model>/finetune/<task>/`` (the controls); the report in ``<reports>/<name>/``.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import shutil
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import NamedTuple

from zhbert.config import ConfigError, config_hash, config_path, dump_toml, load, toml_value
from zhbert.files import folder_sha256, sha256_file, write_json, write_text
from zhbert.finetune.run import FinetuneConfig, PreparedTask, prepare, run_seed, summarise
from zhbert.finetune.tasks import get_task
from zhbert.layout import (
    DEFAULT_WORK,
    MANIFEST,
    SUMMARY,
    TEXT,
    TRAINING,
    WEIGHTS_FILE,
    WORD_VIEW,
    CompareDir,
    RunDir,
    WorkDir,
    seed_dir,
)
from zhbert.model.config import ModelConfig
from zhbert.steps import StepCache
from zhbert.train.launch import default_accelerator, pretrain_command


@dataclass
class VariantConfig:
    """One pretrained model of the comparison."""

    name: str
    """Folder name and label in the report (e.g. char, word, fusion, fusion-charmask)."""
    model: str
    """A model config (configs/model/*.toml): the embedding kind and sizes."""
    whole_word_prob: float = 1.0
    """Masking: 1.0 whole-word masking, 0.0 char masking (the masking ablation)."""
    similar_prob: float = 0.0
    """Correction masking: the share of [MASK]s given a homophone instead (``MaskingConfig.similar_prob``)."""
    description: str = ""


def _default_variants() -> list[VariantConfig]:
    """The demo's question in its budget: does fusion pretraining help over char-only? The word baseline and the
    masking ablations are in configs/compare/small.toml and tiny-ablations.toml."""
    return [VariantConfig("char", "configs/model/tiny-char.toml", description="char-only baseline"),
            VariantConfig("fusion", "configs/model/tiny-fusion.toml", description="char + glyph + pinyin")]


@dataclass
class CompareConfig:
    """configs/compare/*.toml are deltas over these defaults (the tiny CPU comparison of `zhbert demo`)."""

    name: str = "tiny"
    """Names the runs folder and the report folder."""
    runs: str = "runs/compare"
    reports: str = "reports"
    pretrain: str = "configs/pretrain/tiny.toml"
    """The shared pretraining config: steps, batch, optimizer, engine — the budget every variant gets."""
    ranks: int = 2
    """Processes per pretraining run, started by the deepspeed launcher (1: a plain process)."""
    data: str = DEFAULT_WORK
    """Work folder with vocab/, glyphs/, shards/ (char view) and, for word variants, shards-word/ (word view)."""
    finetune: str = "configs/finetune/tiny.toml"
    """Fine-tuning settings shared by every task and variant; ``seeds`` below replaces its seeds."""
    tasks: list[str] = field(default_factory=lambda: ["idiom_pair", "msra_ner"])
    """By default the two bundled tasks on which a tiny model pretrained for the demo's budget comes out ahead of an
    untrained one at a cost the demo can pay (docs/learning.md §10): on sentiment and cluener it does not,
    cluener_mrc costs three times msra_ner once its control is trained to convergence."""
    tasks_dir: str = str(WorkDir(DEFAULT_WORK).tasks)
    """A folder with one folder per task, named after the registered task (`zhbert tasks list`): the bundled ones
    from `zhbert tasks build`, or CLUE's as downloaded (tnews/, afqmc/, …)."""
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    """Fine-tuning seeds, the same for every variant and control, so scores pair up by seed."""
    task_seeds: dict[str, list[int]] = field(default_factory=dict)
    """Seeds of one task instead of ``seeds`` (still the same for every variant): a task whose pretraining gain is
    small against its seed spread needs more of them than one whose gain is large (docs/learning.md §17)."""
    reference: str = "char"
    """The variant every other one is compared against."""
    jobs: int = 2
    """Fine-tuning runs at once, each its own process (on one GPU: 1)."""
    controls: bool = True
    """Also fine-tune each model file untrained (the no-pretraining control) on every task with the same seeds."""
    variants: list[VariantConfig] = field(default_factory=_default_variants)

    def __post_init__(self) -> None:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ConfigError(f"variant names must differ, got {names}")
        if self.reference not in names:
            raise ConfigError(f"reference {self.reference!r} is not a variant; variants: {names}")
        unknown = sorted(set(self.task_seeds) - set(self.tasks))
        if unknown:
            raise ConfigError(f"task_seeds names {unknown}, which are not among the tasks {self.tasks}")
        if any(len(set(self.seeds_for(t))) < 2 for t in self.tasks):
            raise ConfigError("at least 2 seeds per task: the verdicts compare differences with the seed spread")

    def seeds_for(self, task: str) -> list[int]:
        """The seeds every variant and control is fine-tuned with on ``task``."""
        return self.task_seeds.get(task, self.seeds)

    def reads_word_view(self) -> bool:
        """Whether a variant trains on the word view (the demo builds it only then: 25 s of its half hour)."""
        return any(_model(v.model).inputs.view == WORD_VIEW for v in self.variants)


def run_compare(cfg: CompareConfig) -> Path:
    """Pretrain and fine-tune every variant (skipping what is done), then write the report; returns its folder."""
    from zhbert.train.config import PretrainConfig
    from zhbert.train.data import check_inputs
    from zhbert.train.pretrain import PROTOCOL, export_untrained

    runs, tasks = Path(cfg.runs) / cfg.name, Path(cfg.tasks_dir)
    specs = {t: get_task(t) for t in cfg.tasks}  # registered tasks only: an unknown name lists the known ones
    missing = [t for t in cfg.tasks if not (tasks / t).is_dir()]
    if missing:
        raise FileNotFoundError(f"{tasks}: no folder for task(s) {missing} (one folder per task, named after it: "
                                f"the bundled ones from `zhbert tasks build --out {tasks}`, or CLUE's as downloaded)")
    shards = {v.name: _shards(cfg, v) for v in cfg.variants}
    absent = sorted({str(s) for s in shards.values() if not (s / MANIFEST).exists()})
    if absent:
        raise FileNotFoundError(f"no {MANIFEST} in {', '.join(absent)}: prepare the shards the variants train on "
                                "(`zhbert prep`; the word view: `zhbert vocab word`)")
    steps = StepCache(runs)
    exports: dict[str, Path] = {}  # what is fine-tuned: every variant's export, then every control's
    controls: dict[str, str] = {}  # variant → its control
    layout = CompareDir(runs)
    for v in cfg.variants:
        run = layout.pretrain(v.name)
        toml = _write_pretrain_toml(cfg, v, run)
        pretrain_cfg = load(PretrainConfig, toml)
        check_inputs(pretrain_cfg)  # a bad input stops here, before any launcher starts
        data_key = sha256_file(shards[v.name] / MANIFEST)  # the data by content
        key = config_hash(pretrain_cfg, data_key, PROTOCOL)
        steps.run(f"pretrain {v.name}", key, [run.export / TRAINING],
                  partial(_launch_pretrain, toml, run.root, cfg.ranks, key))
        exports[v.name] = run.export
        if cfg.controls:
            control = controls[v.name] = f"untrained-{Path(v.model).stem}"
            if control not in exports:  # one per model file: the masking does not touch the initial weights
                exports[control] = layout.control(control).export
                steps.run(f"untrained {Path(v.model).stem}", config_hash(pretrain_cfg.model, pretrain_cfg.seed,
                                                                          data_key, PROTOCOL),
                          [exports[control] / TRAINING], partial(export_untrained, pretrain_cfg,
                                                                        exports[control]))

    finetune_cfg = load(FinetuneConfig, cfg.finetune)
    unused = sorted(set(finetune_cfg.tasks) - set(cfg.tasks))
    if unused:  # most likely a misspelt task name, which would otherwise silently get the default settings
        print(f"── note: {cfg.finetune} sets tasks {unused}, which this comparison does not fine-tune "
              f"(its tasks: {cfg.tasks})")
    task_data = {t: folder_sha256(tasks / t) for t in cfg.tasks}  # the files, whoever wrote them
    jobs = []
    for name, export in exports.items():
        # the weights and how text becomes inputs (normaliser, segmenter, pinyin reader): a new reader with the
        # same weights (a control's, or a char model's) still changes what a fusion model reads
        model = sha256_file(export / WEIGHTS_FILE), sha256_file(export / TEXT) if (export / TEXT).exists() else None
        for task in cfg.tasks:
            task_cfg = replace(finetune_cfg.for_task(task), seeds=cfg.seeds_for(task))
            job = _Job(f"finetune {name} {task}", task_cfg, export, task, tasks / task, layout.finetune(name, task),
                       config_hash(task_cfg, model, specs[task], task_data[task]))
            if steps.current(job.name, job.key, [job.out / SUMMARY]):
                print(f"── {job.name}: up to date")
            else:
                jobs.append(job)
    _run_finetunes(jobs, cfg.jobs, steps)

    write_json(layout.spec, {
        "name": cfg.name, "reference": cfg.reference, "tasks": cfg.tasks,
        "seeds": {t: cfg.seeds_for(t) for t in cfg.tasks},
        "variants": [{"name": v.name, "embedding": _model(v.model).embedding, "description": v.description,
                      "masking": _masking(v),
                      "control": controls.get(v.name)} for v in cfg.variants],
        "ranks": cfg.ranks, "machine": _machine(), "date": time.strftime("%Y-%m-%d"),
    })
    from zhbert.report import write_report

    report = write_report(runs, Path(cfg.reports) / cfg.name)
    return report.folder


class _Job(NamedTuple):
    name: str
    cfg: FinetuneConfig
    """The task's settings, its seeds included."""
    export: Path
    task: str
    data: Path
    out: Path
    key: str


def _run_finetunes(jobs: list[_Job], workers: int, steps: StepCache) -> None:
    """Fine-tune ``workers`` seeds at a time in spawned worker processes, each seed writing its log to
    ``<out>/seed-<s>/finetune.log``; a run's summary and a line here once its last seed is done. On a CPU each
    process uses its config's ``threads``, so two single-thread runs fill two cores that one would leave half idle;
    handing out seeds rather than whole runs keeps them both busy to the end (whole runs left one run of 12 seeds
    alone on one core for 15 minutes of the demo: docs/learning.md §17)."""
    if not jobs:
        return
    left = {job.name: len(job.cfg.seeds) for job in jobs}
    print(f"── fine-tuning: {len(jobs)} runs, {sum(left.values())} seeds, {workers} at a time; logs in "
          "<variant>/finetune/<task>/seed-<s>/finetune.log", flush=True)
    t0 = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        running = {pool.submit(_finetune_seed, job, seed): (job, seed) for job in jobs for seed in job.cfg.seeds}
        for future in as_completed(running):
            job, seed = running[future]
            try:
                future.result()
            except Exception as e:
                raise RuntimeError(f"{job.name} seed {seed} failed: {e} (log: {_seed_log(job, seed)})") from e
            left[job.name] -= 1
            if left[job.name]:
                continue
            summary = summarise(job.cfg, job.out)
            steps.mark(job.name, job.key)
            print(f"── {job.name}: {summary['split']} {summary['metric']} {summary['mean']:.4f} ± "
                  f"{summary['std']:.4f} ({time.perf_counter() - t0:.0f}s since fine-tuning began)", flush=True)


def _seed_log(job: _Job, seed: int) -> Path:
    return seed_dir(job.out, seed) / "finetune.log"


_prepared: dict[str, PreparedTask] = {}
"""In a worker process: the task last prepared, by its run's key. The pool hands out seeds in run order, so a
worker mostly gets the next seed of the run it just did, and reads and encodes the task once a run, not once a
seed (the demo: 16 preparations instead of 64, 68 s less of its fine-tuning's wall time; docs/learning.md §20)."""


def _finetune_seed(job: _Job, seed: int) -> None:
    """One seed of a run: its seed folder, not the summary, which waits for the run's other seeds."""
    log_path = _seed_log(job, seed)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log, redirect_stdout(log), redirect_stderr(log):
        run = _prepared.get(job.key)
        if run is None:
            _prepared.clear()
            run = _prepared[job.key] = prepare(job.cfg, job.export, job.task, job.data)
        else:
            print("(the task as prepared for an earlier seed of this run in this process)")
        print(run.describe())
        run_seed(run, seed, seed_dir(job.out, seed))


def _masking(v: VariantConfig) -> str:
    """A variant's masking in words, for the report."""
    unit = ("whole-word" if v.whole_word_prob == 1.0 else "char" if v.whole_word_prob == 0.0
            else f"whole-word {v.whole_word_prob:.0%}")
    return unit + (f", {v.similar_prob:.0%} of [MASK]s a homophone" if v.similar_prob else "")


def _model(path: str) -> ModelConfig:
    """A variant's model config (its kind and shape; the table sizes come from the data)."""
    return load(ModelConfig, path)


def _write_pretrain_toml(cfg: CompareConfig, v: VariantConfig, run: RunDir) -> Path:
    """The variant's pretraining config: the shared file, its model, its masking, the data — written next to
    its run so that anyone can re-launch it by hand."""
    run.root.parent.mkdir(parents=True, exist_ok=True)
    toml = run.root.parent / "pretrain.toml"
    table = {"extends": str(config_path(cfg.pretrain).resolve()), "output": str(run.root.resolve()),
             "model": {"extends": str(config_path(v.model).resolve())},
             "masking": {"whole_word_prob": v.whole_word_prob} | ({"similar_prob": v.similar_prob}
                                                                  if v.similar_prob else {}),
             "data": {"work": str(Path(cfg.data).resolve())}}
    write_text(toml, f"# variant {toml_value(v.name)} of the comparison {toml_value(cfg.name)} (written by zhbert "
                     f"compare)\n{dump_toml(table)}")
    return toml


def _shards(cfg: CompareConfig, v: VariantConfig) -> Path:
    """The shards variant ``v`` trains on: the word view for a word model, else the char view."""
    return WorkDir(Path(cfg.data).resolve()).view(_model(v.model).inputs.view)


def _launch_pretrain(toml: Path, run: Path, ranks: int, key: str) -> None:
    """Start pretraining as a user would: under the deepspeed launcher with ``ranks`` processes (a plain process
    for one). An earlier attempt with the same key resumes from its checkpoint; one with another key (the
    config or data changed) is removed first. Output streams to this terminal."""
    marker = run / "compare-key"
    if run.exists() and (not marker.exists() or marker.read_text() != key):
        shutil.rmtree(run)
    run.mkdir(parents=True, exist_ok=True)
    write_text(marker, key)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // ranks)))
    if ranks > 1:
        default_accelerator(env)
    cmd = pretrain_command(toml, ranks, resume=RunDir(run).latest.exists())
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, env=env)
    if done.returncode:
        raise RuntimeError(f"pretraining {toml} failed (exit {done.returncode}); re-run to resume it")


def _machine() -> str:
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {device}; torch {torch.__version__}"
