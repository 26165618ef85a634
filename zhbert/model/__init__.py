"""The model: one encoder trunk, three input embeddings (char | word | fusion), heads, HF conversion.

Plain single-device PyTorch: nothing here imports deepspeed, jieba or pypinyin.
"""

from zhbert.model.config import ModelConfig
from zhbert.model.embeddings import spell_pinyin
from zhbert.model.model import (
    ModelOutput,
    ZhBert,
    ZhBertForCorrection,
    ZhBertForPretraining,
    ZhBertForSequenceClassification,
    ZhBertForSpanExtraction,
    ZhBertForTokenClassification,
    ZhBertModel,
    masked_positions,
)

__all__ = [
    "ModelConfig", "ModelOutput", "ZhBert", "ZhBertForCorrection", "ZhBertForPretraining",
    "ZhBertForSequenceClassification",
    "ZhBertForSpanExtraction", "ZhBertForTokenClassification", "ZhBertModel", "masked_positions", "spell_pinyin",
]
