"""The export folder: what pretraining leaves behind for fine-tuning and for people (DESIGN.md "Export folder").

    config.json, model.safetensors   ``ZhBertModel.save_pretrained`` (fusion: glyph table and pinyin letters inside)
    tokenizer.json, vocab.txt        the char vocab
    pinyin_vocab.txt                 the pinyin vocab (fusion models read pinyin ids from it)
    word_vocab.txt                   the word vocab (word-level models: char vocab first, then words)
    glyphs.json                      the glyph table's sidecar: fonts, coverage, sha256 (fusion models)
    training.json                    how it was trained: config, data hashes, final evaluation

Everything here loads without DeepSpeed, jieba or fonts.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zhbert.config import from_dict
from zhbert.data.files import atomic_write, write_json
from zhbert.data.pinyin import FILENAME as PINYIN_VOCAB
from zhbert.data.pinyin import PinyinVocab
from zhbert.data.vocab import CharVocab
from zhbert.data.word_view import WORD_VOCAB, read_word_vocab
from zhbert.model.config import ModelConfig
from zhbert.model.model import CONFIG_FILE, WEIGHTS_FILE, ZhBertModel

GLYPH_SIDECAR = "glyphs.json"
TRAINING = "training.json"


@dataclass
class Export:
    """An export folder's config and vocabularies; the weights are loaded by the model class that needs them
    (``ZhBertForSequenceClassification.from_pretrained(export.folder, num_labels=…)``)."""

    folder: Path
    model: ModelConfig
    vocab: CharVocab
    pinyin: PinyinVocab
    word_tokens: list[str] | None  # the word vocab, line i = id i; None unless a word-level model

    @property
    def training(self) -> dict[str, Any]:
        path = self.folder / TRAINING
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def save_export(model: ZhBertModel, folder: str | Path, vocab_dir: str | Path, glyphs_dir: str | Path | None = None,
                training: dict[str, Any] | None = None) -> Path:
    """Write ``model`` and the vocab files it was trained with into ``folder`` (see the module docstring)."""
    folder, vocab_dir = Path(folder), Path(vocab_dir)
    (folder / TRAINING).unlink(missing_ok=True)  # the marker of a finished export goes first, comes back last
    model.save_pretrained(folder)
    names = ["tokenizer.json", "vocab.txt", PINYIN_VOCAB] + ([WORD_VOCAB] if model.cfg.embedding == "word" else [])
    for name in names:
        _copy(vocab_dir / name, folder / name)
    if model.cfg.embedding == "fusion" and "glyph" in model.cfg.fusion_inputs and glyphs_dir is not None:
        _copy(Path(glyphs_dir) / GLYPH_SIDECAR, folder / GLYPH_SIDECAR)
    if training is not None:
        write_json(folder / TRAINING, training)
    return folder


def _copy(src: Path, dst: Path) -> None:
    with atomic_write(dst) as tmp:
        shutil.copyfile(src, tmp)


def load_export(folder: str | Path) -> Export:
    """Read an export folder's config and vocabularies, checking that they fit the model."""
    folder = Path(folder)
    for name in (CONFIG_FILE, WEIGHTS_FILE, "tokenizer.json", PINYIN_VOCAB):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder}: no {name}; not a zhbert export folder (see zhbert/export.py)")
    meta = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    cfg = from_dict(ModelConfig, meta["model"])
    vocab, pinyin = CharVocab.load(folder), PinyinVocab.load(folder)
    word_tokens = None
    if cfg.embedding == "word":
        word_tokens = read_word_vocab(folder)
    sizes = [("vocab.txt", len(vocab), cfg.vocab_size)]
    sizes += [(WORD_VOCAB, len(word_tokens), cfg.word_vocab_size)] if word_tokens is not None else []
    sizes += [(PINYIN_VOCAB, len(pinyin), cfg.pinyin_vocab_size)] if cfg.embedding == "fusion" else []
    for name, found, expected in sizes:
        if found != expected:
            raise ValueError(f"{folder}: {name} has {found} entries but the model was built for {expected}")
    return Export(folder, cfg, vocab, pinyin, word_tokens)
