"""The char vocabulary: a Hugging Face `tokenizers` BERT-Chinese WordPiece tokenizer.

Layout as bert-base-chinese: [PAD] 0, [unused1..99] 1–99, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103,
then single characters (every hanzi is its own token) and wordpieces for Latin text and digits.
Saved as ``tokenizer.json`` (for `tokenizers` / `transformers`) and ``vocab.txt`` (for BERT tools).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

SPECIAL_TOKENS = ["[PAD]", *(f"[unused{i}]" for i in range(1, 100)), "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _bert_chinese(model: models.Model) -> Tokenizer:
    tok = Tokenizer(model)
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


class CharVocab:
    """Wraps the tokenizer; ids of the specials are read from it, never assumed."""

    def __init__(self, tokenizer: Tokenizer):
        missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if tokenizer.token_to_id(t) is None]
        if missing:
            raise ValueError(f"char vocab lacks special tokens {missing}")
        self.tokenizer = tokenizer
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            tokenizer.token_to_id(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"))
        cls_, sep = "[CLS]", "[SEP]"
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls_} $A {sep}", pair=f"{cls_} $A {sep} $B:1 {sep}:1",
            special_tokens=[(cls_, self.cls_id), (sep, self.sep_id)])

    @classmethod
    def train(cls, texts: Iterable[str], size: int = 21128, min_count: int = 2) -> CharVocab:
        """Characters seen at least ``min_count`` times, then wordpieces up to ``size`` tokens."""
        texts = list(texts)
        chars: Counter[str] = Counter()
        for t in texts:
            chars.update(t)
        alphabet = [c for c, n in chars.items() if n >= min_count and not c.isspace()]
        tok = _bert_chinese(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
        trainer = trainers.WordPieceTrainer(
            vocab_size=size, min_frequency=min_count, special_tokens=SPECIAL_TOKENS,
            initial_alphabet=alphabet, limit_alphabet=len(alphabet), continuing_subword_prefix="##",
            show_progress=False)
        tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
        return cls(tok)

    @classmethod
    def from_vocab_txt(cls, path: str | Path) -> CharVocab:
        """Adopt an existing BERT vocab.txt (e.g. bert-base-chinese's) as is."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such vocab.txt")
        vocab = {t: i for i, t in enumerate(path.read_text(encoding="utf-8").splitlines())}
        return cls(_bert_chinese(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##")))

    @classmethod
    def load(cls, folder: str | Path) -> CharVocab:
        path = Path(folder) / "tokenizer.json"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; build it with `zhbert vocab char --out {folder} …`")
        return cls(Tokenizer.from_file(str(path)))

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(str(folder / "tokenizer.json"))
        (folder / "vocab.txt").write_text("\n".join(self.tokens) + "\n", encoding="utf-8")

    @property
    def tokens(self) -> list[str]:
        by_id = sorted(self.tokenizer.get_vocab(with_added_tokens=True).items(), key=lambda kv: kv[1])
        return [t for t, _ in by_id]

    @property
    def sha256(self) -> str:
        """Hash of the ordered token list: what a model's embedding rows mean, independent of JSON layout."""
        return hashlib.sha256("\n".join(self.tokens).encode()).hexdigest()

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)
