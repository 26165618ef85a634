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
from safetensors.torch import load_file, save_file
from test_pretrain import ROOT, tiny

from zhbert.cli import main
from zhbert.config import load
from zhbert.export import load_export
from zhbert.hf.export import export_hf
from zhbert.hf.inputs import encode
from zhbert.model import ZhBertForPretraining
from zhbert.train.config import PretrainConfig

transformers = pytest.importorskip("transformers")

KINDS = ("char", "word", "fusion")

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
    for kind in KINDS:
        config = ROOT / "configs" / "pretrain" / f"tiny-{kind}.toml"
        out[kind] = export_untrained(load(PretrainConfig, config, tiny(built_data, root / kind, config)),
                                     root / kind / "export")
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


@pytest.mark.parametrize("kind", ["word", "fusion"])
def test_word_and_fusion_exports_load_as_remote_code(exports, small_corpus, tmp_path, kind):
    folder = export_hf(exports[kind], tmp_path / "hf")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["auto_map"]["AutoModelForMaskedLM"] == "modeling_zhbert.ZhBertForMaskedLM"
    texts = texts_of(small_corpus, 3)
    batch = encode(folder, texts)  # from the folder alone: the same inputs as from the export
    assert all(torch.equal(v, encode(load_export(exports[kind]), texts)[k]) for k, v in batch.items())
    if kind == "word":
        assert batch["input_ids"].max() >= config["zhbert"]["vocab_size"]  # some words are word tokens
    else:
        assert (batch["pinyin_ids"] > 2).any()
    save_file(batch, str(tmp_path / "batch.safetensors"))
    got, tensors = run_fresh(folder, tmp_path)
    assert got["class"] == "ZhBertForMaskedLM" and not got["not loaded"]
    model = ZhBertForPretraining.from_pretrained(exports[kind]).eval()
    with torch.no_grad():
        logits = model(**batch).logits
    real = batch["attention_mask"].bool()
    assert torch.allclose(tensors["logits"][real], logits[real], atol=1e-5)
