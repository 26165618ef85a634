"""Text → the inputs of a word or fusion model in a Hugging Face folder that `zhbert export` wrote: zhbert's own
encoder (``zhbert.finetune.features``) with the settings the folder carries (text.json: normalisation, jieba words
and user dictionaries, the pinyin reader), so the ids are those pretraining saw. Needs zhbert (jieba, pypinyin);
the model itself loads without it.

    from transformers import AutoModelForMaskedLM
    from zhbert.hf.inputs import encode
    model = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True)
    logits = model(**encode(folder, ["今天天气很好。"])).logits
"""

from __future__ import annotations

from pathlib import Path

import torch

from zhbert.config import from_dict
from zhbert.data.pinyin import PinyinVocab
from zhbert.data.vocab import CharVocab
from zhbert.data.word_view import read_word_vocab
from zhbert.export import Export, TextSettings
from zhbert.files import read_json
from zhbert.finetune.features import Feature, TaskEncoder, collate
from zhbert.finetune.tasks import TaskSpec
from zhbert.layout import CONFIG_FILE
from zhbert.model.config import ModelConfig


def folder_export(folder: str | Path) -> Export:
    """The zhbert view of a Hugging Face folder of a word or fusion model: its config and vocabularies."""
    folder = Path(folder)
    cfg = from_dict(ModelConfig, read_json(folder / CONFIG_FILE)["zhbert"])
    words = read_word_vocab(folder) if cfg.embedding == "word" else None
    return Export(folder, cfg, CharVocab.load(folder), PinyinVocab.load(folder), words, TextSettings.load(folder))


def encode(folder: str | Path | Export, texts: list[str], max_len: int | None = None) -> dict[str, torch.Tensor]:
    """``input_ids`` (word ids for a word model), ``attention_mask``, ``token_type_ids``, ``pinyin_ids`` (B, T):
    one ``[CLS] text [SEP]`` row per text, cut to ``max_len`` tokens (default the model's ``max_position``)."""
    export = folder if isinstance(folder, Export) else folder_export(folder)
    max_len = max_len or export.model.max_position
    encoder = TaskEncoder(export, _TEXTS, max_len, stride=max_len)
    cls_, sep = export.vocab.cls_id, export.vocab.sep_id
    features = []
    for n, text in enumerate(texts):
        tokens = encoder.tokens(text)[: max_len - 2]
        ids, pinyin = [cls_, *(t[0] for t in tokens), sep], [0, *(t[1] for t in tokens), 0]
        features.append(Feature(n, ids, [0] * len(ids), pinyin, []))
    return collate(features, export.vocab.pad_id)


# TaskEncoder wants a task; reading plain text uses none of it
_TEXTS = TaskSpec(name="texts", labels=["", ""])
