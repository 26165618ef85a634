"""Hugging Face folders (zhbert/hf): `zhbert export` of each kind loaded in a fresh process where zhbert cannot be
imported, with zhbert's logits and, for the char model, zhbert's ids from its own tokenizer and a working fill-mask
pipeline; and `zhbert pretrain --init` from a BERT folder that transformers writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers  # a dev dependency (pyproject's dev extra): never skipped
from safetensors.torch import load_file, save_file
from test_convert import randomise
from test_pretrain import ROOT, finish, launch, tiny

from zhbert.cli import main
from zhbert.config import load
from zhbert.export import load_export
from zhbert.hf.export import export_hf
from zhbert.hf.inputs import encode
from zhbert.model import ModelConfig, ZhBertForPretraining
from zhbert.model.hf_init import init_from_hf
from zhbert.train.config import PretrainConfig
from zhbert.train.data import PretrainData, check_inputs
from zhbert.train.loader import train_batches
from zhbert.train.masking import MaskingCollator
from zhbert.train.metrics import read_metrics

# run in a fresh process: zhbert made unimportable, so neither the folder's code nor the tokenizer can lean on it
FRESH = """
import json, sys
sys.modules["zhbert"] = None
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

folder, work = sys.argv[1:]
out = {}
if (work := __import__("pathlib").Path(work)).joinpath("texts.json").exists():  # the char model: its own tokenizer
    texts = json.loads(work.joinpath("texts.json").read_text(encoding="utf-8"))
    tok = AutoTokenizer.from_pretrained(folder)
    out["ids"] = [tok(t, truncation=True, max_length=128)["input_ids"] for t in texts]
    batch = dict(tok(texts[:4], padding=True, return_tensors="pt"))
    out["fill"] = pipeline("fill-mask", model=folder)("今天天气很[MASK]。")
    model, info = AutoModelForMaskedLM.from_pretrained(folder, output_loading_info=True)
else:
    batch = load_file(str(work / "batch.safetensors"))
    model, info = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True, output_loading_info=True)
with torch.no_grad():
    logits = model.eval()(**batch).logits
save_file({"logits": logits.contiguous(), **{k: v.contiguous() for k, v in batch.items()}},
          str(work / "out.safetensors"))
out["class"] = type(model).__name__
out["not loaded"] = [*map(str, info["missing_keys"]), *map(str, info["unexpected_keys"]),
                     *map(str, info["mismatched_keys"])]
work.joinpath("out.json").write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
"""


def run_fresh(folder: Path, work: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """FRESH in a new interpreter of this venv, from an empty folder, without PYTHONPATH, offline."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"HF_HOME": str(work / "hf-home"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", FRESH, str(folder), str(work)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads((work / "out.json").read_text(encoding="utf-8")), load_file(str(work / "out.safetensors"))


def texts_of(corpus: Path, n: int) -> list[str]:
    """Real documents cut to 100 characters (≤ 100 tokens: no truncation), from three sources."""
    out = []
    for source in ("reviews", "peoples_daily", "msra_news"):
        lines = (corpus / f"{source}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
        out += [json.loads(line)["text"][:100] for line in lines]
    return out


@pytest.fixture(scope="module")
def exports(built_data, tmp_path_factory) -> dict[str, Path]:
    """An export folder of each kind from the tiny configs and the test data: the model as a run starts (random
    weights; no training needed for parity), written by pretraining's own export step."""
    from zhbert.train.pretrain import export_untrained

    root = tmp_path_factory.mktemp("exports")
    out = {}
    for name, kind, model in (("char", "char", {"position": "learned"}), ("char-rope", "char", {"position": "rope"}),
                              ("char-preln", "char", {"position": "learned", "pre_ln": True}),
                              ("word", "word", {"position": "rope"}), ("fusion", "fusion", {"position": "learned"})):
        config = ROOT / "configs" / "pretrain" / f"tiny-{kind}.toml"
        overrides = {f"model.{key}": value for key, value in model.items()}
        cfg = load(PretrainConfig, config, tiny(built_data, root / name, config, **overrides))
        out[name] = export_untrained(cfg, root / name / "export")
    return out


def test_char_export_is_a_bert_with_zhberts_tokenizer(exports, small_corpus, tmp_path):
    export, folder = load_export(exports["char"]), tmp_path / "hf"
    assert main(["export", str(export.folder), "--out", str(folder)]) == 0
    texts = texts_of(small_corpus, 100) + ["ＡＢＣ１２３，你好！　半角ａｂｃ。（全角括号）：“引号”？"]
    (tmp_path / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    got, tensors = run_fresh(folder, tmp_path)
    assert got["class"] == "BertForMaskedLM" and not got["not loaded"]
    ours = encode(export, texts)
    expected = [row[mask.bool()].tolist() for row, mask in zip(ours["input_ids"], ours["attention_mask"])]
    assert got["ids"] == expected  # every text, the full-width line included
    model = ZhBertForPretraining.from_pretrained(export.folder).eval()
    batch = {k: tensors[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        logits = model(**batch).logits
    real = batch["attention_mask"].bool()
    assert torch.allclose(tensors["logits"][real], logits[real], atol=1e-5)
    assert len(got["fill"]) == 5  # the decoder spaces characters apart, as bert-base-chinese's does
    assert all(r["sequence"].replace(" ", "") == f"今天天气很{r['token_str']}。" for r in got["fill"])


@pytest.mark.parametrize("kind", ["word", "fusion", "char-rope", "char-preln"])
def test_word_fusion_and_rotary_exports_load_as_remote_code(exports, small_corpus, tmp_path, kind):
    """What BERT cannot hold goes as zhbert's own code: the word and fusion embeddings, rotary positions, pre-LN
    (which `zhbert export` once sent to the BERT writer, which refused it)."""
    folder = export_hf(exports[kind], tmp_path / "hf")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["auto_map"]["AutoModelForMaskedLM"] == "modeling_zhbert.ZhBertForMaskedLM"
    texts = texts_of(small_corpus, 3)
    batch = encode(folder, texts)  # from the folder alone: the same inputs as from the export
    assert all(torch.equal(v, encode(load_export(exports[kind]), texts)[k]) for k, v in batch.items())
    if kind == "word":
        assert batch["input_ids"].max() >= config["zhbert"]["vocab_size"]  # some words are word tokens
    elif kind == "fusion":
        assert (batch["pinyin_ids"] > 2).any()
    save_file(batch, str(tmp_path / "batch.safetensors"))
    got, tensors = run_fresh(folder, tmp_path)
    assert got["class"] == "ZhBertForMaskedLM" and not got["not loaded"]
    model = ZhBertForPretraining.from_pretrained(exports[kind]).eval()
    with torch.no_grad():
        logits = model(**batch).logits
    real = batch["attention_mask"].bool()
    assert torch.allclose(tensors["logits"][real], logits[real], atol=1e-5)


def bert_folder(folder: Path, tokens: list[str], **sizes: int) -> transformers.BertForMaskedLM:
    """A BERT with random weights everywhere (test_convert.randomise), saved as transformers saves it
    (safetensors), with ``tokens`` as its vocab.txt."""
    config = transformers.BertConfig(vocab_size=len(tokens), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                     **sizes)
    bert = randomise(transformers.BertForMaskedLM(config)).eval()
    bert.save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return bert


TINY_CHAR = ROOT / "configs" / "pretrain" / "tiny-char.toml"
TINY_SIZES = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                  max_position_embeddings=128)  # configs/model/tiny-char.toml


@pytest.mark.slow
def test_pretrain_init_starts_from_the_bert_and_resume_keeps_the_checkpoint(built_data, tmp_path):
    """The first step's loss is the BERT's own loss on that step's batches. Its vocab.txt lists the run's tokens in
    another order, so rows must be matched by string, not by id."""
    tokens = check_inputs(load(PretrainConfig, TINY_CHAR, tiny(built_data, tmp_path / "x", TINY_CHAR))).vocabs.tokens
    order = tokens[:104] + tokens[104:][::-1]  # the specials where BERT has them, every char moved
    bert = bert_folder(tmp_path / "bert", order, **TINY_SIZES)
    run = tmp_path / "run"
    args = tiny(built_data, run, TINY_CHAR, steps=1, eval_every=1, save_every=1,
                **{"model.hidden_dropout": 0.0, "model.attention_dropout": 0.0, "model.position": "learned"})
    cli = [sys.executable, "-m", "zhbert", "pretrain", "--config", str(TINY_CHAR), *args]
    out = finish(launch([*cli, "--init", str(tmp_path / "bert")]))
    assert f"{len(tokens):,} of {len(tokens):,} char rows" in out
    first = read_metrics(run, "train")[0]["loss"]

    cfg = load(PretrainConfig, TINY_CHAR, args)
    inputs = check_inputs(cfg)
    collator = MaskingCollator(cfg.masking, inputs.vocabs.char, inputs.vocabs.pinyin, inputs.vocabs.tokens,
                               inputs.text.context_reader())
    to_bert = torch.tensor([order.index(t) for t in tokens])  # run id → BERT id
    torch.manual_seed(cfg.seed)
    fresh = ZhBertForPretraining(inputs.model).eval()  # what the run would have started from without --init
    losses, fresh_losses = [], []
    for batch in train_batches(PretrainData(cfg, 0, 1), collator, 0, 1, cfg.accumulation(1), "cpu"):
        labels = torch.where(batch["labels"] >= 0, to_bert[batch["labels"].clamp(min=0)], batch["labels"])
        with torch.no_grad():
            losses.append(bert(input_ids=to_bert[batch["input_ids"]], attention_mask=batch["attention_mask"],
                               token_type_ids=batch.get("token_type_ids"), labels=labels).loss.item())
            fresh_losses.append(fresh(batch["input_ids"], batch["attention_mask"], labels=batch["labels"]).loss.item())
    expected, unexpected = sum(losses) / len(losses), sum(fresh_losses) / len(fresh_losses)
    assert abs(first - expected) < 1e-4 * expected and abs(first - unexpected) > 0.1

    # resuming keeps the checkpoint's weights: --init (here a folder that is not there) is not read
    finish(launch([*cli, "--steps=2", "--resume", "--init", str(tmp_path / "nowhere")]))
    assert [r["step"] for r in read_metrics(run, "train")] == [1, 2]


def test_init_takes_the_shared_parts_of_word_and_fusion_models(tmp_path):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "中", "国", "人", "好"]
    theirs = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "好", "人", "中", "外"]  # no 国; 外 not in the run
    sizes = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=16)
    bert = bert_folder(tmp_path / "bert", theirs, **sizes)
    hf = bert.state_dict()
    base = dict(vocab_size=len(tokens), hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                max_position=16)
    fusion = ModelConfig(embedding="fusion", pinyin_vocab_size=5, num_fonts=2, glyph_size=8, **base)
    models = {"word": ZhBertForPretraining(ModelConfig(embedding="word", word_vocab_size=12, **base)),
              "fusion": ZhBertForPretraining(fusion, glyphs=torch.randint(0, 255, (9, 2, 8, 8), dtype=torch.uint8),
                                             pinyin_letters=torch.zeros(5, 7, dtype=torch.long))}
    for kind, model in models.items():
        fresh = {k: v.clone() for k, v in model.state_dict().items()}
        assert "8 of 9 char rows" in init_from_hf(model, tmp_path / "bert", tokens)
        now = model.state_dict()
        rows, mine = now["bert.embeddings.tokens.weight"], [5, 7, 8]  # 中 人 好 → BERT's 7 6 5
        assert torch.equal(rows[mine], hf["bert.embeddings.word_embeddings.weight"][[7, 6, 5]])
        assert torch.equal(now["mlm.bias"][mine], hf["cls.predictions.bias"][[7, 6, 5]])
        assert torch.equal(rows[6], fresh["bert.embeddings.tokens.weight"][6]) and now["mlm.bias"][6] == 0  # 国
        assert torch.equal(rows[9:], fresh["bert.embeddings.tokens.weight"][9:])  # the word model's words
        assert torch.equal(now["bert.encoder.blocks.1.mlp.fc.weight"],
                           hf["bert.encoder.layer.1.intermediate.dense.weight"])
        assert torch.equal(now["bert.embeddings.positions.weight"], hf["bert.embeddings.position_embeddings.weight"])
        assert torch.equal(now["mlm.ln.weight"], hf["cls.predictions.transform.LayerNorm.weight"])
        kept = [k for k in now if k.startswith(("bert.embeddings.glyph_net", "bert.embeddings.pinyin_net",
                                                "bert.embeddings.fuse"))]
        assert (kind == "fusion") == bool(kept) and all(torch.equal(now[k], fresh[k]) for k in kept)

    rotary = ZhBertForPretraining(ModelConfig(embedding="word", word_vocab_size=12, position="rope", **base))
    with pytest.raises(ValueError, match="position rope vs learned"):  # BERT's position table has no place there
        init_from_hf(rotary, tmp_path / "bert", tokens)
    bert_folder(tmp_path / "big", theirs, **(sizes | {"hidden_size": 64}))
    with pytest.raises(ValueError, match="hidden_size 32 vs 64"):
        init_from_hf(models["word"], tmp_path / "big", tokens)
    config = json.loads((tmp_path / "big" / "config.json").read_text(encoding="utf-8"))
    (tmp_path / "big" / "config.json").write_text(json.dumps(config | {"model_type": "roberta"}), encoding="utf-8")
    with pytest.raises(ValueError, match="only BERT folders"):
        init_from_hf(models["word"], tmp_path / "big", tokens)
    (tmp_path / "bert" / "vocab.txt").unlink()
    with pytest.raises(ValueError, match="no vocab.txt to match them by string"):
        init_from_hf(models["word"], tmp_path / "bert", tokens[:-1])
    (tmp_path / "bert" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="safetensors only"):
        init_from_hf(models["word"], tmp_path / "bert", tokens)
