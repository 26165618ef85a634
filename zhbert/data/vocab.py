"""The char vocabulary: a Hugging Face `tokenizers` BERT-Chinese WordPiece tokenizer.

Layout as bert-base-chinese: [PAD] 0, [unused1..99] 1–99, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103,
then single characters (every hanzi is its own token) and wordpieces for Latin text and digits.
Saved as ``tokenizer.json`` (for `tokenizers` / `transformers`) and ``vocab.txt`` (for BERT tools).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tqdm.auto import tqdm

from zhbert.data.text import HANZI_RUN
from zhbert.files import atomic_write, read_tokens, tokens_sha256, write_tokens
from zhbert.layout import TOKENIZER, VOCAB

SPECIAL_TOKENS = ["[PAD]", *(f"[unused{i}]" for i in range(1, 100)), "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _bert_chinese(model: models.Model) -> Tokenizer:
    tok = Tokenizer(model)
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def count(texts: Sequence[str]) -> tuple[Counter[str], Counter[str]]:
    """The characters of ``texts`` and their Latin/digit words of two or more characters, as the BERT-Chinese
    normaliser and pre-tokeniser read them. Both work one character at a time (each maps a character to the same
    string wherever it stands, and splits at the same characters), so each distinct character goes through them
    once and the texts are counted in C (``Counter``, ``str.translate``): 4.1 times as fast as normalising and
    pre-tokenising text by text on the demo corpus, with the same counts (benchmarks/vocab_count.py; tests/test_vocab.py
    checks the counts)."""
    tok = _bert_chinese(models.WordPiece({t: i for i, t in enumerate(SPECIAL_TOKENS)}, unk_token="[UNK]"))
    normalize, pre_tokenize = tok.normalizer.normalize_str, tok.pre_tokenizer.pre_tokenize_str
    seen: Counter[str] = Counter()
    for text in tqdm(texts, desc="count characters", unit=" docs", mininterval=1):
        seen.update(text)
    normal = {c: normalize(c) for c in seen}
    chars: Counter[str] = Counter()
    for c, n in seen.items():
        for d in normal[c]:
            chars[d] += n
    # a character a word goes on through: not a hanzi, nor one the pre-tokeniser splits at (space, punctuation)
    inside = {d: not HANZI_RUN.fullmatch(d) and len(pre_tokenize(f"a{d}a")) == 1 for s in normal.values() for d in s}
    words_only = str.maketrans({c: "".join(d if inside[d] else " " for d in s) for c, s in normal.items()})
    words: Counter[str] = Counter()
    for text in texts:
        words.update(w for w in text.translate(words_only).split(" ") if len(w) > 1)
    return chars, words


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
    def train(cls, texts: Sequence[str], size: int = 21128, min_count: int = 2) -> CharVocab:
        """Specials, then every character seen ``min_count`` times (most frequent first), ``##`` forms of
        the characters that continue Latin/digit words, then whole Latin/digit words up to ``size``.

        Counting goes through the tokenizer's own BERT normaliser and pre-tokeniser (``count``); the selection is
        done here because `tokenizers`' WordPiece trainer breaks ties differently from run to run, and
        a vocab must hash the same every time it is built from the same text.
        """
        chars, words = count(texts)

        def ranked(counts: Counter[str]) -> list[str]:
            return sorted((k for k, n in counts.items() if n >= min_count), key=lambda k: (-counts[k], k))

        alphabet = [c for c in ranked(chars) if not c.isspace()]
        inner: Counter[str] = Counter()
        for word, n in words.items():
            for c in word[1:]:
                inner[c] += n
        known = set(alphabet)
        continuation = ["##" + c for c in ranked(inner) if c in known]
        tokens = list(dict.fromkeys([*SPECIAL_TOKENS, *alphabet, *continuation, *ranked(words)]))[:size]
        vocab = {t: i for i, t in enumerate(tokens)}
        return cls(_bert_chinese(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##")))

    @classmethod
    def from_vocab_txt(cls, path: str | Path) -> CharVocab:
        """Adopt an existing BERT vocab.txt (e.g. bert-base-chinese's) as is."""
        vocab = {t: i for i, t in enumerate(read_tokens(path, "give the path of a BERT vocab.txt"))}
        return cls(_bert_chinese(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##")))

    @classmethod
    def load(cls, folder: str | Path) -> CharVocab:
        path = Path(folder) / TOKENIZER
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; build it with `zhbert vocab char --out {folder} …`")
        return cls(Tokenizer.from_file(str(path)))

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_tokens(folder / VOCAB, self.tokens)
        with atomic_write(folder / TOKENIZER) as tmp:  # last: what `load` and the build steps look for
            self.tokenizer.save(str(tmp))

    @property
    def tokens(self) -> list[str]:
        by_id = sorted(self.tokenizer.get_vocab(with_added_tokens=True).items(), key=lambda kv: kv[1])
        return [t for t, _ in by_id]

    @property
    def sha256(self) -> str:
        """Hash of the ordered token list: what a model's embedding rows mean, independent of JSON layout."""
        return tokens_sha256(self.tokens)

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)
