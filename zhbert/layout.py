"""Where things live: the names of the folders and files zhbert writes and reads, in one place.

A work folder (``zhbert demo``, ``zhbert prep`` + ``vocab`` + ``glyphs``) holds the prepared data::

    <work>/corpus/        the embedded demo corpus (JSON lines + manifest.json)
    <work>/tasks/         the bundled fine-tuning tasks, one folder per task
    <work>/vocab/         tokenizer.json, vocab.txt, pinyin_vocab.txt, word_vocab.txt
    <work>/glyphs/        glyphs.npy + glyphs.json
    <work>/shards/        the char view (char and fusion models)
    <work>/shards-word/   the word view (word models)
    <work>/clean/<key>/   prep's clean documents, one folder per cleaning config and inputs (data/clean.py)

A pretraining run folder holds ``checkpoints/`` (``latest`` names the newest), ``metrics.jsonl``,
``tensorboard/`` and ``export/`` (zhbert/export.py). A comparison's runs folder holds one folder per variant
(``<variant>/pretrain/`` is a run folder, ``<variant>/finetune/<task>/seed-<n>/``) and one per control.

Every folder zhbert writes describes itself in a ``manifest.json`` (shards, corpus, tasks, fonts).
This module imports nothing from zhbert, so every layer may use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_WORK = "data/demo"  # the work folder every command defaults to (`zhbert demo` fills it)
MANIFEST = "manifest.json"
STEPS = "steps.json"  # a folder's keyed record of the steps that made it (zhbert.steps)

# vocab folder (and export folder)
TOKENIZER = "tokenizer.json"
VOCAB = "vocab.txt"
PINYIN_VOCAB = "pinyin_vocab.txt"
WORD_VOCAB = "word_vocab.txt"

# glyph folder
GLYPHS = "glyphs.npy"
GLYPH_SIDECAR = "glyphs.json"

# shard formats: the manifest's ``format`` of each view
CHAR_VIEW = "zhbert.char_view/1"
WORD_VIEW = "zhbert.word_view/2"  # 2: char_len, so packing groups the rows as the char view does

# export folder (besides the vocab files above)
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TEXT = "text.json"
TRAINING = "training.json"  # written last: its presence marks a finished export

# run folder
CHECKPOINTS = "checkpoints"
LATEST = "latest"  # DeepSpeed's name for the pointer file, so its own tools (zero_to_fp32) find our checkpoints
METRICS = "metrics.jsonl"
TENSORBOARD = "tensorboard"
EXPORT = "export"

# fine-tuning output
SUMMARY = "summary.json"  # <out>/: every seed's score
SEED_METRICS = "metrics.json"  # <out>/seed-<n>/: one seed's scores, history and encoding counts
PREDICTIONS = "predictions.jsonl"  # <out>/seed-<n>/: one line per dev and test example


@dataclass(frozen=True)
class WorkDir:
    """A work folder's parts (see the module docstring)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def tasks(self) -> Path:
        return self.root / "tasks"

    @property
    def vocab(self) -> Path:
        return self.root / "vocab"

    @property
    def glyphs(self) -> Path:
        return self.root / "glyphs"

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    @property
    def word_shards(self) -> Path:
        return self.root / "shards-word"

    def view(self, fmt: str) -> Path:
        """The folder holding the shards of format ``fmt`` (CHAR_VIEW or WORD_VIEW)."""
        return {CHAR_VIEW: self.shards, WORD_VIEW: self.word_shards}[fmt]


@dataclass(frozen=True)
class RunDir:
    """A pretraining run folder's parts."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    @property
    def latest(self) -> Path:
        return self.checkpoints / LATEST

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD

    @property
    def export(self) -> Path:
        return self.root / EXPORT


@dataclass(frozen=True)
class CompareDir:
    """A comparison's runs folder: ``<runs>/<name>/``."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def spec(self) -> Path:
        """What the comparison was: name, reference, tasks, seeds, variants, machine, date (the report reads it)."""
        return self.root / "compare.json"

    def pretrain(self, variant: str) -> RunDir:
        return RunDir(self.root / variant / "pretrain")

    def control(self, name: str) -> RunDir:
        """An untrained control's folder: only its ``export/``."""
        return RunDir(self.root / name)

    def finetune(self, model: str, task: str) -> Path:
        return self.root / model / "finetune" / task


def seed_dir(out: Path, seed: int) -> Path:
    """One fine-tuning seed's folder under a task's output folder."""
    return Path(out) / f"seed-{seed}"


def scored_split(seed_metrics: dict) -> str:
    """The split a seed's metrics.json is scored on: test when the test split had labels (it then has scores),
    else dev."""
    return "test" if "test" in seed_metrics else "dev"
