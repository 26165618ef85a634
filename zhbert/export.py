"""The export folder: what pretraining leaves behind for fine-tuning and for people (docs/architecture.md,
"Export folder").

    config.json, model.safetensors   ``ZhBertModel.save_pretrained`` (fusion: glyph table and pinyin letters inside)
    tokenizer.json, vocab.txt        the char vocab
    pinyin_vocab.txt                 the pinyin vocab (fusion models read pinyin ids from it)
    word_vocab.txt                   the word vocab (word-level models: char vocab first, then words)
    glyphs.json                      the glyph table's sidecar: fonts, coverage, sha256 (fusion models)
    text.json, user-dict-<sha>.txt   how text becomes tokens: the normalisation and segmentation (user dictionaries
                                     copied, named by content) of the pretraining shards, the pypinyin version and
    pinyin-context-<sha>.npz         the pinyin reader (the context reader's file, copied, when the shards used it)
    training.json                    how it was trained: config, data hashes, final evaluation

Everything here loads without DeepSpeed, jieba or fonts.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

from zhbert.config import from_dict, to_dict
from zhbert.data.pinyin import CONTEXT_FILE, ContextReader, PinyinVocab, Reader
from zhbert.data.segment import SegmentConfig
from zhbert.data.text import NormalizeConfig
from zhbert.data.vocab import CharVocab
from zhbert.data.word_view import read_word_vocab
from zhbert.files import atomic_write, read_json, sha256_file, write_json
from zhbert.layout import (
    CONFIG_FILE,
    GLYPH_SIDECAR,
    MANIFEST,
    PINYIN_VOCAB,
    TEXT,
    TOKENIZER,
    TRAINING,
    VOCAB,
    WEIGHTS_FILE,
    WORD_VOCAB,
)
from zhbert.model.config import ModelConfig
from zhbert.model.model import ZhBertModel


@dataclass
class TextSettings:
    """How text becomes tokens for a model: the normalisation and segmentation that built its pretraining shards
    (docs/architecture.md, "Same text in, same tokens out"). Fine-tuning and inference encode with these, never
    with settings of their own that could silently disagree."""

    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    """``user_dicts``: the dictionary files to load (in an export folder, its own copies)."""
    pypinyin: str = ""
    """The pypinyin version where the model was pretrained (whose dictionaries read the shards' pinyin when prep ran
    there too; prep does not record it); '' when unknown."""
    pinyin: Reader = "word"
    """The pinyin reader that read the shards (``PrepConfig.pinyin``); ``word`` where not recorded: what prep used
    before the context reader existed."""
    pinyin_context: str = ""
    """The context reader's file (``pinyin_context.npz``; in an export folder, its own copy) when ``pinyin`` is
    ``context``."""
    assumed: bool = False
    """True when an export folder had no text.json and the defaults were assumed (see ``load``)."""

    def context_reader(self) -> ContextReader | None:
        return ContextReader.load(Path(self.pinyin_context)) if self.pinyin == "context" else None

    @classmethod
    def of_shards(cls, shards: str | Path) -> TextSettings:
        """The settings recorded in a shard folder's manifest (a word view's: those of its char view), with every
        user dictionary checked to be there, so that pretraining can copy it into the export."""
        manifest = read_json(Path(shards) / MANIFEST)
        if "char_view" in manifest:  # a word view: its char view holds the prep config
            char_view = manifest["char_view"]
            manifest = read_json(Path(char_view["folder"]) / MANIFEST) if "config" not in char_view else char_view
        config = manifest["config"]
        reader = manifest.get("pinyin_reader") or {"reader": "word"}  # absent from manifests written before it
        settings = cls(from_dict(NormalizeConfig, config["normalize"]), from_dict(SegmentConfig, config["segment"]),
                       version("pypinyin"), reader["reader"])
        if settings.pinyin == "context":
            if sha256_file(CONTEXT_FILE) != reader["context_sha256"]:
                raise ValueError(f"{shards} was read by another pinyin context reader than {CONTEXT_FILE} (sha256 "
                                 f"{reader['context_sha256'][:12]}…); re-run prep, so that the export carries the "
                                 "reader its shards were made with")
            settings.pinyin_context = str(CONTEXT_FILE)
        missing = [d for d in settings.segment.user_dicts if not Path(d).is_file()]
        if missing:
            raise FileNotFoundError(f"{shards} was segmented with user dictionaries that are not there: {missing}; "
                                    "the export must carry them (run from where prep ran, or fix segment.user_dicts)")
        then = manifest.get("user_dicts_sha256")  # absent from manifests written before it was recorded
        changed = [d for d, sha in zip(settings.segment.user_dicts, then or []) if sha256_file(Path(d)) != sha]
        if changed:
            raise ValueError(f"{shards} was segmented with other contents of {changed} (edited since prep ran); "
                             "re-run prep, so that the export carries the dictionaries its shards were made with")
        return settings

    def save(self, folder: Path) -> None:
        """``text.json`` plus a copy of each user dictionary named by its content hash."""
        names, dicts = [], []
        for path in self.segment.user_dicts:
            sha = sha256_file(Path(path))
            name = f"user-dict-{sha[:16]}.txt"
            _copy(Path(path), folder / name)
            names.append(name)
            dicts.append({"file": name, "sha256": sha, "source": str(path)})
        reader: dict[str, str] = {"reader": self.pinyin}
        if self.pinyin == "context":
            sha = sha256_file(Path(self.pinyin_context))
            reader |= {"file": f"pinyin-context-{sha[:16]}.npz", "sha256": sha}
            _copy(Path(self.pinyin_context), folder / reader["file"])
        write_json(folder / TEXT, {"normalize": to_dict(self.normalize),
                                   "segment": to_dict(replace(self.segment, user_dicts=names)),
                                   "user_dicts": dicts, "pypinyin": self.pypinyin, "pinyin": reader})

    @classmethod
    def load(cls, folder: Path) -> TextSettings:
        """The settings of an export folder, its user dictionaries checked against their hashes. An export written
        before text.json existed gets the defaults (what `zhbert prep` uses unless told otherwise) and a printed
        warning, since its shards' settings can no longer be known from the folder."""
        path = folder / TEXT
        if not path.exists():
            print(f"warning: {folder} has no {TEXT} (exported by an older zhbert): assuming the default normalisation "
                  "and segmentation, which is right only if its shards were prepared with them", file=sys.stderr)
            return cls(assumed=True)
        data = read_json(path)
        reader = data.get("pinyin", {"reader": "word"})  # absent from exports written before the context reader
        for d in data["user_dicts"] + ([reader] if "file" in reader else []):
            if not (folder / d["file"]).is_file() or sha256_file(folder / d["file"]) != d["sha256"]:
                raise ValueError(f"{folder / d['file']}: missing or changed since export (sha256 {d['sha256'][:12]}…)")
        segment = from_dict(SegmentConfig, data["segment"])
        settings = cls(from_dict(NormalizeConfig, data["normalize"]),
                       replace(segment, user_dicts=[str(folder / d) for d in segment.user_dicts]), data["pypinyin"],
                       reader["reader"], str(folder / reader["file"]) if "file" in reader else "")
        if settings.pypinyin and settings.pypinyin != version("pypinyin"):
            print(f"warning: {folder} was pretrained with pinyin read by pypinyin {settings.pypinyin}, this is "
                  f"{version('pypinyin')}: some readings may differ", file=sys.stderr)
        return settings


@dataclass
class Export:
    """An export folder's config and vocabularies; the weights are loaded by the model class that needs them
    (``ZhBertForSequenceClassification.from_pretrained(export.folder, num_labels=…)``)."""

    folder: Path
    model: ModelConfig
    vocab: CharVocab
    pinyin: PinyinVocab
    word_tokens: list[str] | None  # the word vocab, line i = id i; None unless a word-level model
    text: TextSettings

    @property
    def training(self) -> dict[str, Any]:
        path = self.folder / TRAINING
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def save_export(model: ZhBertModel, folder: str | Path, vocab_dir: str | Path, glyphs_dir: str | Path | None = None,
                training: dict[str, Any] | None = None, *, text: TextSettings) -> Path:
    """Write ``model``, the vocab files it was trained with and the text settings of its shards into ``folder``
    (see the module docstring)."""
    folder, vocab_dir = Path(folder), Path(vocab_dir)
    (folder / TRAINING).unlink(missing_ok=True)  # the marker of a finished export goes first, comes back last
    model.save_pretrained(folder)
    text.save(folder)
    for name in dict.fromkeys([TOKENIZER, VOCAB, PINYIN_VOCAB, model.cfg.inputs.tokens]):
        _copy(vocab_dir / name, folder / name)
    if model.cfg.inputs.glyphs and glyphs_dir is not None:
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
    for name in (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER, PINYIN_VOCAB):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder}: no {name}; not a zhbert export folder (see zhbert/export.py)")
    meta = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    cfg = from_dict(ModelConfig, meta["model"])
    vocab, pinyin = CharVocab.load(folder), PinyinVocab.load(folder)
    word_tokens = read_word_vocab(folder) if cfg.inputs.tokens == WORD_VOCAB else None
    sizes = [(VOCAB, len(vocab), cfg.vocab_size)]
    sizes += [(WORD_VOCAB, len(word_tokens), cfg.word_vocab_size)] if word_tokens is not None else []
    sizes += [(PINYIN_VOCAB, len(pinyin), cfg.pinyin_vocab_size)] if cfg.inputs.pinyin else []
    for name, found, expected in sizes:
        if found != expected:
            raise ValueError(f"{folder}: {name} has {found} entries but the model was built for {expected}")
    return Export(folder, cfg, vocab, pinyin, word_tokens, TextSettings.load(folder))
