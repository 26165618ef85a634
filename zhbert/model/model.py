"""The trunk (embedding + encoder) and the models people train: pretraining (MLM, optional NSP/SOP)
and the fine-tuning heads. Every model saves to and loads from an export folder:

    config.json        {"architecture": class name, "model": ModelConfig fields, "num_labels": n?}
    model.safetensors  the state dict, including the fusion buffers
                       ``bert.embeddings.glyphs`` (uint8 [V, fonts, S, S]) and
                       ``bert.embeddings.pinyin_letters`` (int64 [P, max_letters], see spell_pinyin)

so a fusion export needs no fonts and no pinyin vocab file to run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from zhbert.config import from_dict, to_dict
from zhbert.files import atomic_write, write_text
from zhbert.layout import CONFIG_FILE, WEIGHTS_FILE
from zhbert.model.config import ModelConfig
from zhbert.model.embeddings import EMBEDDINGS
from zhbert.model.encoder import Encoder, init_weights
from zhbert.model.heads import ClassificationHead, MLMHead, SpanHead, TokenClassificationHead

IGNORE = -100  # label of positions that carry no loss (unmasked tokens, padding, sub-tokens)


class ZhBert(nn.Module):
    """Embedding (chosen by ``cfg.embedding``) + encoder: ids (B, T) → hidden states (B, T, H).

    ``glyphs`` and ``pinyin_letters`` are the fusion embedding's tables (see FusionEmbeddings);
    the other kinds take neither.
    """

    def __init__(self, cfg: ModelConfig, glyphs: torch.Tensor | np.ndarray | None = None,
                 pinyin_letters: torch.Tensor | None = None) -> None:
        super().__init__()
        cfg.check_sized()
        tables = {k: v for k, v in (("glyphs", glyphs), ("pinyin_letters", pinyin_letters)) if v is not None}
        self.embeddings = EMBEDDINGS[cfg.embedding](cfg, **tables)
        self.encoder = Encoder(cfg)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None, pinyin_ids: torch.Tensor | None = None,
                document_ids: torch.Tensor | None = None) -> torch.Tensor:
        """``document_ids`` (B, T): with it, a token attends only to tokens of the same id (packed rows kept apart)."""
        x = self.embeddings(input_ids, token_type_ids, pinyin_ids)  # (B, T, H)
        return self.encoder(x, attention_mask, document_ids)  # (B, T, H)


@dataclass
class ModelOutput:
    """``logits``: MLM logits (N masked, V) when labels are given, else (B, T, V); class logits
    (B, n); tag logits (B, T, n); or span logits (B, T, 2). ``pair_logits``: NSP/SOP (B, 2). ``loss`` is what is
    optimised; pretraining also gives its parts, ``mlm_loss`` and ``pair_loss``, to be logged apart."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    pair_logits: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    pair_loss: torch.Tensor | None = None


class ZhBertModel(nn.Module):
    """Base of the models with heads: the trunk as ``self.bert``, BERT init, export folder I/O."""

    carried: tuple[str, ...] = ()
    """Heads (state-dict prefixes) this class takes over from an export of another class that has them, beside the
    trunk: a correction model keeps the pretrained MLM head."""

    def __init__(self, cfg: ModelConfig, glyphs: torch.Tensor | np.ndarray | None = None,
                 pinyin_letters: torch.Tensor | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.bert = ZhBert(cfg, glyphs, pinyin_letters)

    def initialize(self) -> None:
        """(Re-)initialise every weight with BERT init; buffers stay as they are."""
        self.apply(partial(init_weights, std=self.cfg.initializer_range))

    def head_kwargs(self) -> dict[str, Any]:
        """Constructor arguments beyond the config, written to config.json (e.g. num_labels)."""
        return {}

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write config.json and model.safetensors (no pickle) to ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        with atomic_write(folder / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
        meta = {"architecture": type(self).__name__, "model": to_dict(self.cfg), **self.head_kwargs()}
        write_text(folder / CONFIG_FILE, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, **head_kwargs: Any) -> ZhBertModel:
        """Load an export folder. Loading a folder saved by another class (a pretraining export
        into a fine-tuning class) takes the trunk and leaves the new head at its fresh init."""
        folder = Path(folder)
        meta = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        cfg = from_dict(ModelConfig, meta.pop("model"))
        architecture = meta.pop("architecture")
        state = load_file(str(folder / WEIGHTS_FILE))
        same = architecture == cls.__name__
        model = cls(cfg, **({**meta, **head_kwargs} if same else head_kwargs),
                    glyphs=state.get("bert.embeddings.glyphs"),
                    pinyin_letters=state.get("bert.embeddings.pinyin_letters"))
        if same:
            model.load_state_dict(state, strict=True)
            return model
        model.bert.load_state_dict({k.removeprefix("bert."): v for k, v in state.items()
                                    if k.startswith("bert.")}, strict=True)
        for prefix in model.carried:
            part = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
            if part:
                model.get_submodule(prefix.rstrip(".")).load_state_dict(part, strict=True)
        return model


class ZhBertForPretraining(ZhBertModel):
    """MLM with the decoder tied to the input token table, plus NSP / SOP if ``cfg.pair_head``."""

    def __init__(self, cfg: ModelConfig, glyphs: torch.Tensor | np.ndarray | None = None,
                 pinyin_letters: torch.Tensor | None = None) -> None:
        super().__init__(cfg, glyphs, pinyin_letters)
        self.mlm = MLMHead(cfg)
        self.pair = ClassificationHead(cfg, 2) if cfg.pair_head != "none" else None
        self.initialize()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None, pinyin_ids: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, pair_labels: torch.Tensor | None = None,
                mlm_positions: torch.Tensor | None = None, document_ids: torch.Tensor | None = None) -> ModelOutput:
        """``labels`` (B, T): the original id at masked positions, -100 elsewhere. With labels, logits
        are computed only at the masked positions: gather first, then transform + decoder. ``mlm_positions``
        (N,): those positions, ``masked_positions(labels)``, best computed by the caller while the labels are still
        on the CPU: found here on an accelerator it costs a host sync (the count N is data). ``document_ids``: see
        `ZhBert.forward`."""
        h = self.bert(input_ids, attention_mask, token_type_ids, pinyin_ids, document_ids)  # (B, T, H)
        decoder = self.bert.embeddings.tokens.weight  # (V, E), tied
        mlm_loss = pair_loss = None
        if labels is None:
            logits = self.mlm(h, decoder)  # (B, T, V)
        else:
            positions = masked_positions(labels) if mlm_positions is None else mlm_positions  # (N,)
            logits = self.mlm(h.flatten(0, 1)[positions], decoder)  # (N, V)
            mlm_loss = F.cross_entropy(logits.float(), labels.flatten()[positions])  # fp32 softmax under bf16 too
        pair_logits = self.pair(h) if self.pair is not None else None
        if pair_labels is not None:
            if pair_logits is None:
                raise ValueError("pair_labels given but the config has pair_head = 'none'")
            pair_loss = F.cross_entropy(pair_logits, pair_labels)
        parts = [x for x in (mlm_loss, pair_loss) if x is not None]
        loss = sum(parts[1:], parts[0]) if parts else None
        return ModelOutput(logits=logits, loss=loss, pair_logits=pair_logits, mlm_loss=mlm_loss, pair_loss=pair_loss)


class ZhBertForCorrection(ZhBertModel):
    """Spelling correction (SIGHAN): at every position the token that belongs there, through the MLM head (tied
    decoder), which it takes over from a pretraining export; the loss is over the positions with a label."""

    carried = ("mlm.",)

    def __init__(self, cfg: ModelConfig, glyphs: torch.Tensor | np.ndarray | None = None,
                 pinyin_letters: torch.Tensor | None = None) -> None:
        super().__init__(cfg, glyphs, pinyin_letters)
        self.mlm = MLMHead(cfg)
        self.initialize()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None, pinyin_ids: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> ModelOutput:
        """labels (B, T): the right token id per position, -100 where there is none (specials, padding)."""
        return self.from_hidden(self.bert(input_ids, attention_mask, token_type_ids, pinyin_ids), attention_mask,
                                labels)

    def from_hidden(self, h: torch.Tensor, attention_mask: torch.Tensor,
                    labels: torch.Tensor | None = None) -> ModelOutput:
        """Logits over the token vocab at every position (B, T, V), and their loss against ``labels``."""
        logits = self.mlm(h, self.bert.embeddings.tokens.weight)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten()) if labels is not None else None
        return ModelOutput(logits=logits, loss=loss)


def masked_positions(labels: torch.Tensor) -> torch.Tensor:
    """Flat indices (into B·T, row-major) of the positions with a label, (N,): the rows ``h.flatten(0, 1)`` gives
    to the MLM head, in the order of ``labels[labels != IGNORE]``."""
    return (labels.flatten() != IGNORE).nonzero().squeeze(1)


class _Classifier(ZhBertModel):
    """A label per sequence or per token: the head decides which, and the loss is the same for both."""

    head_type: type[nn.Module]

    def __init__(self, cfg: ModelConfig, num_labels: int, glyphs: torch.Tensor | np.ndarray | None = None,
                 pinyin_letters: torch.Tensor | None = None, **head_options: Any) -> None:
        """``head_options``: the head's own settings (``pooling`` of a sequence head), kept in config.json."""
        super().__init__(cfg, glyphs, pinyin_letters)
        self.num_labels, self.head_options = num_labels, head_options
        self.head = self.head_type(cfg, num_labels, **head_options)
        self.initialize()

    def head_kwargs(self) -> dict[str, Any]:
        return {"num_labels": self.num_labels, **self.head_options}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None, pinyin_ids: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> ModelOutput:
        """labels: (B,) class ids for a sequence head; (B, T) tag ids, -100 on specials and padding, for a
        token head."""
        return self.from_hidden(self.bert(input_ids, attention_mask, token_type_ids, pinyin_ids), attention_mask,
                                labels)

    def from_hidden(self, h: torch.Tensor, attention_mask: torch.Tensor,
                    labels: torch.Tensor | None = None) -> ModelOutput:
        """The head and its loss on hidden states (B, T, H) from the trunk, or from elsewhere (a layer mix)."""
        logits = self.head(h, attention_mask)  # (B, n) | (B, T, n)
        loss = F.cross_entropy(logits.flatten(0, -2), labels.flatten()) if labels is not None else None
        return ModelOutput(logits=logits, loss=loss)


class ZhBertForSequenceClassification(_Classifier):
    """Sentence / sentence-pair classification (AFQMC, TNEWS, IFLYTEK, OCNLI, CSL, WSC)."""

    head_type = ClassificationHead


class ZhBertForTokenClassification(_Classifier):
    """A tag per token (CLUENER, MSRA NER)."""

    head_type = TokenClassificationHead


class ZhBertForSpanExtraction(ZhBertModel):
    """Extractive QA (CMRC2018): start / end position of the answer span."""

    def __init__(self, cfg: ModelConfig, glyphs: torch.Tensor | np.ndarray | None = None,
                 pinyin_letters: torch.Tensor | None = None) -> None:
        super().__init__(cfg, glyphs, pinyin_letters)
        self.head = SpanHead(cfg)
        self.initialize()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None, pinyin_ids: torch.Tensor | None = None,
                start_positions: torch.Tensor | None = None,
                end_positions: torch.Tensor | None = None) -> ModelOutput:
        """start_positions, end_positions (B,) token indices; loss is the mean of the two CEs."""
        return self.from_hidden(self.bert(input_ids, attention_mask, token_type_ids, pinyin_ids), attention_mask,
                                start_positions, end_positions)

    def from_hidden(self, h: torch.Tensor, attention_mask: torch.Tensor, start_positions: torch.Tensor | None = None,
                    end_positions: torch.Tensor | None = None) -> ModelOutput:
        """The span head and its loss on hidden states (B, T, H) from the trunk, or from elsewhere."""
        logits = self.head(h, attention_mask)  # (B, T, 2)
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = (F.cross_entropy(logits[..., 0], start_positions)
                    + F.cross_entropy(logits[..., 1], end_positions)) / 2
        return ModelOutput(logits=logits, loss=loss)
