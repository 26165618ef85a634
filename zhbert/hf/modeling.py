"""The Hugging Face face of a word or fusion model: a ``PretrainedConfig`` holding the ``ModelConfig`` fields and a
``PreTrainedModel`` around ``ZhBertForPretraining``.

This file is not imported by zhbert: `zhbert export` appends it to the source of zhbert's model modules and writes
the result into the Hugging Face folder as ``modeling_zhbert.py`` (zhbert/hf/remote.py), where
``AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True)`` runs it without zhbert installed. Its
zhbert imports are there for linters and are dropped in that copy, where the names are defined above it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from zhbert.config import from_dict
from zhbert.model.config import ModelConfig
from zhbert.model.encoder import init_weights
from zhbert.model.model import IGNORE, ZhBertForPretraining


class ZhBertConfig(PretrainedConfig):
    """``zhbert``: the ``ModelConfig`` fields, as zhbert's own export writes them."""

    model_type = "zhbert"

    def __init__(self, zhbert: dict | None = None, **kwargs) -> None:
        self.zhbert = dict(zhbert or {})
        super().__init__(**kwargs)

    def model_config(self) -> ModelConfig:
        return from_dict(ModelConfig, self.zhbert)


class ZhBertForMaskedLM(PreTrainedModel):
    """zhbert's pretraining model (``self.zhbert``), MLM logits over every position. Inputs: ``input_ids`` (word
    ids for a word model), ``attention_mask``, ``token_type_ids`` and, for fusion, ``pinyin_ids``.

    The fusion tables (glyph bitmaps, pinyin letters) are buffers loaded from model.safetensors; the zero tables
    built here only give them their shapes. The model is built on the CPU, not on the meta device Transformers
    builds on, because zhbert computes the glyph centring reference from the table as it builds. That reference,
    which zhbert does not save, is saved here: a buffer missing from the file would come back uninitialised."""

    config_class = ZhBertConfig
    main_input_name = "input_ids"

    def __init__(self, config: ZhBertConfig) -> None:
        super().__init__(config)
        cfg = config.model_config()
        uses = cfg.fusion_inputs if cfg.embedding == "fusion" else []
        with torch.device("cpu"):  # the glyph table's centring reference cannot be computed on the meta device
            glyphs = (torch.zeros(cfg.vocab_size, cfg.num_fonts, cfg.glyph_size, cfg.glyph_size, dtype=torch.uint8)
                      if "glyph" in uses else None)
            letters = (torch.zeros(cfg.pinyin_vocab_size, cfg.pinyin_max_letters, dtype=torch.long)
                       if "pinyin" in uses else None)
            self.zhbert = ZhBertForPretraining(cfg, glyphs, letters)
        if "glyph" in uses:
            embeddings = self.zhbert.bert.embeddings
            embeddings.register_buffer("glyph_reference", embeddings.glyph_reference, persistent=True)
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:
        init_weights(module, std=self.config.model_config().initializer_range)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, pinyin_ids: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **kwargs) -> MaskedLMOutput:
        """labels (B, T): the original id at masked positions, -100 elsewhere."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        logits = self.zhbert(input_ids, attention_mask, token_type_ids, pinyin_ids).logits  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE) \
            if labels is not None else None
        return MaskedLMOutput(loss=loss, logits=logits)
