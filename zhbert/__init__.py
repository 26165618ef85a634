"""zhbert: Chinese BERT pretraining with whole-word masking and char + glyph + pinyin fusion embeddings."""

__version__ = "0.1.0"
