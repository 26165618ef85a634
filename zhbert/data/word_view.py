"""The word vocabulary and the word view of the shards, for the word-level baseline.

Both are derived from the char-view shards, so the word model sees the same segmented documents in
the same order: each jieba word of a sequence is rebuilt from its tokens (``word_ids`` group them),
and becomes one word-vocab id if it is among the ``size`` most frequent multi-token words, else it
falls back to its char tokens. The word vocab *starts with the whole char vocab at the same ids*, so
a fallback is simply the char ids, and [PAD]/[UNK]/[CLS]/[SEP]/[MASK] keep their ids.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from zhbert.data.shards import finalize_folder, read_arrow, word_view, write_arrow
from zhbert.data.tokenizer import WordVocab, surface
from zhbert.data.vocab import CharVocab
from zhbert.files import read_json, read_tokens, sha256_file, tokens_sha256, write_tokens
from zhbert.layout import MANIFEST, WORD_VIEW, WORD_VOCAB


def read_word_vocab(folder: str | Path) -> list[str]:
    """The word vocab of a vocab or export folder, line i = id i (split on '\\n' only, as vocab.txt)."""
    return read_tokens(Path(folder) / WORD_VOCAB, "word models need the word vocab (`zhbert vocab word`)")


def _words(ids: list[int], word_ids: list[int]) -> Iterator[tuple[int, int]]:
    """(start, end) token spans of the words of one sequence (specials are their own span)."""
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or word_ids[i] != word_ids[start] or word_ids[i] < 0:
            yield start, i
            start = i


def _shard_tables(shards: Path) -> Iterator[tuple[str, pa.Table]]:
    manifest = read_json(shards / MANIFEST)
    for shard in manifest["shards"]:
        yield shard["file"], read_arrow(shards / shard["file"])


def count_words(shards: Path, vocab: CharVocab) -> Counter[str]:
    """Frequency of every multi-token word (words holding [UNK] are skipped: their text is unknown)."""
    tokens, unk = vocab.tokens, vocab.unk_id
    counts: Counter[str] = Counter()
    for name, table in _shard_tables(shards):
        for ids, word_ids in tqdm(zip(table.column("input_ids").to_pylist(), table.column("word_ids").to_pylist()),
                                  total=table.num_rows, desc=f"count words {name}", leave=False, mininterval=1):
            for start, end in _words(ids, word_ids):
                if end - start > 1 and unk not in ids[start:end]:
                    counts[surface(tokens, ids, start, end)] += 1
    return counts


def build_word_view(shards: Path, vocab_dir: Path, out: Path, size: int = 30000, min_count: int = 3) -> dict[str, Any]:
    """Write ``word_vocab.txt`` into ``vocab_dir`` and the word-view shards into ``out``."""
    t0 = time.perf_counter()
    char_manifest = read_json(shards / MANIFEST)
    vocab = CharVocab.load(vocab_dir)
    if char_manifest["vocab"]["char_sha256"] != vocab.sha256:
        raise ValueError(f"{shards} was prepared with another char vocab than {vocab_dir} "
                         f"({char_manifest['vocab']['char_sha256'][:12]} vs {vocab.sha256[:12]})")
    tokens = vocab.tokens
    known = set(tokens)
    counts = count_words(shards, vocab)
    ranked = sorted(((n, w) for w, n in counts.items() if n >= min_count and w not in known),
                    key=lambda x: (-x[0], x[1]))
    word_tokens = tokens + [w for _, w in ranked[:size]]
    write_tokens(vocab_dir / WORD_VOCAB, word_tokens)
    words = WordVocab(vocab, word_tokens)
    word_sha = tokens_sha256(word_tokens)

    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # the old view stops looking finished while its shards are replaced
    totals: Counter[str] = Counter()
    files = []
    for name, table in _shard_tables(shards):
        cols: dict[str, list] = {"input_ids": [], "word_ids": [], "doc_id": table.column("doc_id").to_pylist(),
                                 "char_len": pc.list_value_length(table.column("input_ids"))}
        for ids, word_ids in zip(table.column("input_ids").to_pylist(), table.column("word_ids").to_pylist()):
            new_ids, new_word_ids, w = [], [], 0
            for start, end in _words(ids, word_ids):
                if word_ids[start] < 0:  # [CLS] / [SEP]
                    new_ids.append(ids[start])
                    new_word_ids.append(-1)
                    continue
                totals["multi_token_words"] += end - start > 1
                wid = words.id(ids[start:end])
                if wid is not None:
                    new_ids.append(wid)
                    new_word_ids.append(w)
                    totals["words_in_vocab"] += 1
                else:
                    new_ids += ids[start:end]
                    new_word_ids += [w] * (end - start)
                    totals["words_as_chars"] += 1
                w += 1
            cols["input_ids"].append(new_ids)
            cols["word_ids"].append(new_word_ids)
            totals["tokens"] += len(new_ids)
        totals["sequences"] += len(cols["input_ids"])
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        write_arrow(out / name, cols, word_view(len(word_tokens)))
        files.append(name)
    manifest = {
        "format": WORD_VIEW,
        "config_hash": hashlib.sha256(f"{char_manifest['config_hash']}{word_sha}".encode()).hexdigest()[:16],
        "char_view": {"config_hash": char_manifest["config_hash"], "manifest_sha256": sha256_file(shards / MANIFEST),
                      "folder": str(shards), "config": char_manifest["config"],  # how its text was prepared
                      "user_dicts_sha256": char_manifest.get("user_dicts_sha256"),
                      "pinyin_reader": char_manifest.get("pinyin_reader")},
        "vocab": {"char_sha256": vocab.sha256, "word_sha256": word_sha, "word_size": len(word_tokens),
                  "multi_char_words": len(word_tokens) - len(tokens), "size": size, "min_count": min_count},
        "counts": dict(totals) | {"char_view_tokens": char_manifest["counts"]["tokens"]},
        "shards": [{"file": f} for f in files],
    }
    finalize_folder(out, files, word_view(len(word_tokens)), manifest)
    c = manifest["counts"]
    print(f"word vocab: {len(word_tokens):,} entries ({len(word_tokens) - len(tokens):,} multi-char words over "
          f"the {len(tokens):,} char tokens) → {vocab_dir / WORD_VOCAB}\n"
          f"word view: {c['sequences']:,} sequences, {c['tokens']:,} tokens "
          f"({c['tokens'] / c['char_view_tokens']:.1%} of the char view); "
          f"{c.get('words_in_vocab', 0) / max(c.get('multi_token_words', 0), 1):.1%} of multi-char words are in the "
          f"word vocab → {out} ({time.perf_counter() - t0:.1f}s)")
    return manifest
