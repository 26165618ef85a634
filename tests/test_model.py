"""The model on a tiny real vocab: the chars of a few Chinese sentences, their pinyin and glyphs."""

from __future__ import annotations

import dataclasses
import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from zhbert.config import ConfigError, load
from zhbert.model import (
    ModelConfig,
    ZhBert,
    ZhBertForPretraining,
    ZhBertForSequenceClassification,
    ZhBertForSpanExtraction,
    ZhBertForTokenClassification,
    spell_pinyin,
)
from zhbert.model.embeddings import PINYIN_LETTERS, PinyinCNN
from zhbert.model.encoder import Block

ROOT = Path(__file__).resolve().parents[1]
TEXT = [
    "银行在人民路上，我们明天去北京看长城。",
    "他喜欢读书，也喜欢写字。",
    "中文的汉字有很多不同的写法。",
    "春天来了，公园里的花都开了。",
    "学生们在教室里认真学习数学和语文。",
    "绿色的树叶在风中轻轻地动着。",
]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, CLS, SEP, MASK = 0, 2, 3, 4
TINY = dict(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, max_position=64)
KINDS = ["char", "word", "fusion"]


@cache
def vocab() -> list[str]:
    return SPECIALS + sorted({c for line in TEXT for c in line})


@cache
def pinyin_vocab() -> list[str]:
    return ["[PAD]", "[UNK]", "[MASK]", *sorted({s for line in TEXT for s in _readings(line) if s})]


def _readings(line: str) -> list[str]:
    """TONE3 syllable per char, '' for non-hanzi (pypinyin: a test dependency, never a model one)."""
    from pypinyin import Style, pinyin

    out = pinyin(line, style=Style.TONE3, neutral_tone_with_five=True, errors=lambda s: [[""]] * len(s))
    return [r[0] if "\u4e00" <= c <= "\u9fff" else "" for c, r in zip(line, out, strict=True)]


@cache
def glyph_table() -> np.ndarray:
    """The real glyph table of the tiny vocab, drawn from the fonts shipped in fonts/."""
    from zhbert.data.glyphs import render_glyph_table

    return render_glyph_table(vocab(), size=24).pixels


def config(kind: str, **kw) -> ModelConfig:
    V = len(vocab())
    extra = {"char": {}, "word": {"word_vocab_size": V + 20},
             "fusion": {"pinyin_vocab_size": len(pinyin_vocab()), "num_fonts": glyph_table().shape[1],
                        "glyph_channels": 8, "pinyin_channels": 16}}[kind]
    return ModelConfig(embedding=kind, vocab_size=V, **{**TINY, **extra, **kw})


def tables(cfg: ModelConfig) -> dict:
    if cfg.embedding != "fusion":
        return {}
    return {"glyphs": glyph_table(), "pinyin_letters": spell_pinyin(pinyin_vocab(), cfg.pinyin_max_letters)}


def build(cls=ZhBertForPretraining, kind: str = "char", head: dict | None = None, **kw):
    """A tiny model of ``cls``; ``head``: its extra constructor arguments, ``kw``: config fields."""
    torch.manual_seed(0)
    cfg = config(kind, **kw)
    return cls(cfg, **(head or {}), **tables(cfg))


def batch(T: int = 24, mask_rate: float = 0.15, seed: int = 0) -> dict[str, torch.Tensor]:
    """[CLS] sentence [SEP] padded to T, pinyin ids, and MLM labels on ~15 % of the hanzi."""
    ids = {t: i for i, t in enumerate(vocab())}
    pids = {s: i for i, s in enumerate(pinyin_vocab())}
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for line in TEXT:
        tok = [CLS, *(ids[c] for c in line), SEP]
        pin = [0, *(pids[s] if s else 0 for s in _readings(line)), 0]
        rows.append((tok + [PAD] * (T - len(tok)), pin + [0] * (T - len(pin)), len(tok)))
    input_ids = torch.tensor([r[0] for r in rows])
    out = {"input_ids": input_ids, "pinyin_ids": torch.tensor([r[1] for r in rows]),
           "attention_mask": (torch.arange(T) < torch.tensor([r[2] for r in rows])[:, None]).long(),
           "token_type_ids": torch.zeros_like(input_ids)}
    hanzi = out["pinyin_ids"] > 0
    chosen = hanzi & (torch.rand(input_ids.shape, generator=gen) < mask_rate)
    chosen[:, 1] |= hanzi[:, 1]  # at least one masked token per row
    out["labels"] = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    out["input_ids"] = torch.where(chosen, torch.full_like(input_ids, MASK), input_ids)
    out["pinyin_ids"] = torch.where(chosen, torch.full_like(input_ids, 2), out["pinyin_ids"])
    return out


def inputs(b: dict, kind: str) -> dict:
    keep = ("input_ids", "attention_mask", "token_type_ids") + (("pinyin_ids",) if kind == "fusion" else ())
    return {k: b[k] for k in keep}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_model_config_loads_and_unknown_keys_fail(tmp_path):
    paths = sorted((ROOT / "configs/model").glob("*.toml"))
    assert {p.stem for p in paths} >= {"tiny-char", "tiny-word", "tiny-fusion", "base-char", "base-fusion"}
    for p in paths:
        cfg = load(ModelConfig, p)
        assert cfg.hidden_size % cfg.num_heads == 0
    assert load(ModelConfig, ROOT / "configs/model/base-char.toml") == ModelConfig()
    assert load(ModelConfig, ROOT / "configs/model/tiny-char.toml", ["embedding_size=16"]).emb_dim == 16
    (tmp_path / "typo.toml").write_text("hiden_size = 64\n")
    with pytest.raises(ConfigError, match="hiden_size"):
        load(ModelConfig, tmp_path / "typo.toml")
    word = load(ModelConfig, None, ["embedding=\"word\""])  # sizes come from the vocab files, at one point:
    with pytest.raises(ConfigError, match="word_vocab_size"):
        ZhBert(word)  # a model is never built unsized
    assert word.sized(100, 150, 30).word_vocab_size == 150 and word.inputs.tokens == "word_vocab.txt"
    assert load(ModelConfig, None, ["embedding=\"char\""]).sized(100, 150, 30).word_vocab_size == 0
    with pytest.raises(ConfigError, match="pinyin_vocab_size"):
        load(ModelConfig, ROOT / "configs/model/tiny-fusion.toml").sized(100, 0, 0)


def test_spell_pinyin_spells_letters_and_rejects_other_conventions():
    table = spell_pinyin(["[PAD]", "[UNK]", "[MASK]", "zhong1", "lv4", "de5"], max_letters=7)
    assert table.shape == (6, 7) and table.dtype == torch.long
    assert not table[0].any()
    assert [PINYIN_LETTERS[i] for i in table[3] if i] == list("zhong1")
    assert [PINYIN_LETTERS[i] for i in table[4] if i] == list("lv4")
    assert table[1, 0] != table[2, 0] and not table[1:3, 1:].any()
    for bad in ("zhōng", "lü4", "Zhong1", "zhong", "zhuangg1"):
        with pytest.raises(ValueError):
            spell_pinyin(["[PAD]", bad])


def test_pinyin_net_is_the_width_2_convolution_it_stands_for():
    """PinyinCNN gathers per-letter products instead of running nn.Conv1d; values and gradients must be the
    convolution's, or exports trained before the change would read differently."""
    cfg = config("fusion")
    net = PinyinCNN(cfg)
    torch.nn.init.normal_(net.conv.bias)  # a bias of zeros would hide one added at the wrong place
    spelt = spell_pinyin(pinyin_vocab(), cfg.pinyin_max_letters)
    conv = torch.nn.functional.conv1d(net.letters(spelt).transpose(1, 2), net.conv.weight, net.conv.bias).amax(2)
    torch.testing.assert_close(net(spelt), conv)
    grads = [torch.autograd.grad(out.square().sum(), (net.letters.weight, net.conv.weight, net.conv.bias))
             for out in (net(spelt), conv)]
    for gathered, reference in zip(*grads):  # float32 sums in another order
        torch.testing.assert_close(gathered, reference, rtol=1e-4, atol=1e-4)


def test_glyph_table_is_real():
    table = glyph_table()
    V = len(vocab())
    assert table.dtype == np.uint8 and table.shape[0] == V and table.shape[2:] == (24, 24)
    ink = table.reshape(V, table.shape[1], -1).astype(float).mean(-1)
    assert (ink[: len(SPECIALS)] == 0).all() and (ink[len(SPECIALS):] > 0).all()
    # different characters look different, in every font
    assert not np.array_equal(table[vocab().index("银")], table[vocab().index("行")])


@pytest.mark.parametrize("kind", KINDS)
def test_shapes(kind):
    model = build(kind=kind).eval()
    b = batch()
    B, T = b["input_ids"].shape
    V = model.cfg.token_vocab_size
    with torch.no_grad():
        assert model.bert(**inputs(b, kind)).shape == (B, T, 32)
        assert model(**inputs(b, kind)).logits.shape == (B, T, V)
        out = model(**inputs(b, kind), labels=b["labels"])
    n_masked = int((b["labels"] != -100).sum())
    assert out.logits.shape == (n_masked, V) and out.loss.ndim == 0 and out.pair_logits is None


@pytest.mark.parametrize("kind", KINDS)
def test_padding_is_masked(kind):
    """Changing what sits in padded positions changes nothing at real positions."""
    model = build(kind=kind).eval()
    b = inputs(batch(), kind)
    pad = b["attention_mask"] == 0
    other = dict(b, input_ids=torch.where(pad, torch.full_like(pad, 7, dtype=torch.long), b["input_ids"]),
                 token_type_ids=pad.long())
    if kind == "fusion":
        other["pinyin_ids"] = torch.where(pad, torch.full_like(pad, 5, dtype=torch.long), b["pinyin_ids"])
    with torch.no_grad():
        h1, h2 = model.bert(**b), model.bert(**other)
    real = ~pad
    assert torch.allclose(h1[real], h2[real], atol=1e-5)
    assert not torch.allclose(h1[pad], h2[pad], atol=1e-3)  # the padded inputs really did change


@pytest.mark.parametrize("kind", KINDS)
def test_document_ids_keep_packed_rows_apart(kind):
    """Two sentences packed in one row: with ``document_ids`` the second one's hidden states do not depend on
    the first one's tokens (block-diagonal attention); without, they do (attention crosses the seam)."""
    model = build(kind=kind).eval()
    b = inputs(batch(T=48), kind)
    first = int(b["attention_mask"][0].sum())  # [CLS] sentence 1 [SEP] | sentence 2 [SEP] | padding
    second = b["input_ids"][1, 1:int(b["attention_mask"][1].sum())]
    packed = {k: v[:1].clone() for k, v in b.items()}
    packed["input_ids"][0, first:first + len(second)] = second
    packed["attention_mask"][0, :first + len(second)] = 1
    if kind == "fusion":
        packed["pinyin_ids"][0, first:first + len(second)] = b["pinyin_ids"][1, 1:1 + len(second)]
    documents = torch.where(torch.arange(48) < first, 1, 2)[None] * packed["attention_mask"]
    changed = dict(packed, input_ids=packed["input_ids"].clone())
    changed["input_ids"][0, 1:first - 1] = MASK  # every token of sentence 1 (not its [CLS] / [SEP])
    two = slice(first, first + len(second))
    with torch.no_grad():
        kept_apart = [model.bert(**x, document_ids=documents)[0, two] for x in (packed, changed)]
        crossing = [model.bert(**x)[0, two] for x in (packed, changed)]
        assert torch.isfinite(model.bert(**packed, document_ids=documents)).all()  # padding rows too
    assert torch.allclose(*kept_apart, atol=1e-5)
    assert not torch.allclose(*crossing, atol=1e-3)


def centred_parts(emb, ids: torch.Tensor, pids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per token (B, T, E): the glyph feature minus that of the mean image of the inked glyphs, and the pinyin
    feature minus the mean over the real syllables — computed here token by token, from the tables."""
    table = torch.as_tensor(glyph_table()).float() / 255
    mean_image = table[table.flatten(1).amax(1) > 0].mean(0, keepdim=True)
    out = {}
    if hasattr(emb, "glyph_net"):
        glyph = emb.glyph_net(table[ids].flatten(0, 1)) - emb.glyph_net(mean_image)
        out["glyph"] = glyph.view(*ids.shape, -1)
    if hasattr(emb, "pinyin_net"):
        pinyin = emb.pinyin_net(emb.pinyin_letters[pids].flatten(0, 1))
        pinyin = pinyin - emb.pinyin_net(emb.pinyin_letters[3:]).mean(0)
        out["pinyin"] = pinyin.view(*ids.shape, -1)
    return out


def test_fusion_per_distinct_id_equals_concat_then_linear():
    """The split-weight, per-distinct-id computation is Linear(3E→H) over [char ‖ glyph ‖ pinyin], the glyph and
    pinyin features centred."""
    model = build(kind="fusion").eval()
    emb = model.bert.embeddings
    b = batch()
    ids, pids = b["input_ids"], b["pinyin_ids"]
    with torch.no_grad():
        parts = centred_parts(emb, ids, pids)
        x = emb.fuse(torch.cat([emb.tokens(ids), parts["glyph"], parts["pinyin"]], dim=-1))
        x = x + emb.positions.weight[: ids.shape[1]] + emb.segments(b["token_type_ids"])
        reference = emb.ln(x)
        assert torch.allclose(emb(ids, b["token_type_ids"], pids), reference, atol=1e-5)


@pytest.mark.parametrize("parts", [["glyph"], ["pinyin"]])
def test_fusion_ablations_fuse_only_their_parts(parts, tmp_path):
    """Glyph-only and pinyin-only fusion: Linear(2E→H) over [char ‖ part], without the other table or net."""
    cfg = config("fusion", fusion_inputs=parts)
    torch.manual_seed(0)
    model = ZhBertForPretraining(cfg, **tables(cfg)).eval()
    emb = model.bert.embeddings
    other = {"glyph": "pinyin", "pinyin": "glyph"}[parts[0]]
    assert emb.fuse.in_features == 2 * cfg.emb_dim
    assert not any(other in n for n in model.state_dict())  # neither its table nor its net
    b = batch()
    ids, pids = b["input_ids"], b["pinyin_ids"]
    with torch.no_grad():
        (part,) = centred_parts(emb, ids, pids).values()
        x = emb.fuse(torch.cat([emb.tokens(ids), part], dim=-1))
        reference = emb.ln(x + emb.positions.weight[: ids.shape[1]] + emb.segments(b["token_type_ids"]))
        assert torch.allclose(emb(ids, b["token_type_ids"], pids), reference, atol=1e-5)
        loaded = ZhBertForPretraining.from_pretrained(model.save_pretrained(tmp_path)).eval()
        assert loaded.cfg.fusion_inputs == parts
        assert torch.equal(loaded(**inputs(b, "fusion")).logits, model(**inputs(b, "fusion")).logits)
    with pytest.raises(ConfigError, match="fusion_inputs"):
        config("fusion", fusion_inputs=[])


def test_fusion_glyph_and_pinyin_tables_are_buffers_unless_trainable():
    fixed = build(kind="fusion")
    names = dict(fixed.named_buffers())
    assert names["bert.embeddings.glyphs"].dtype == torch.uint8
    assert "bert.embeddings.pinyin_letters" in names
    assert not any("glyphs" in n for n, _ in fixed.named_parameters())
    trainable = build(kind="fusion", glyph_trainable=True)
    table = dict(trainable.named_parameters())["bert.embeddings.glyphs"]
    assert n_params(trainable) - n_params(fixed) == table.numel() == glyph_table().size
    b = batch()
    trainable(**inputs(b, "fusion"), labels=b["labels"]).loss.backward()
    assert table.grad is not None and table.grad.abs().sum() > 0


@pytest.mark.parametrize("trainable_table", [False, True])
def test_frozen_fusion_nets_give_the_same_vectors_from_their_tables(trainable_table):
    """``freeze_nets``: the embedding's output is what the nets give, the nets (and a trainable glyph table) get no
    gradient, and after a step that moved the rest the kept tables still equal the nets' features."""
    model = build(kind="fusion", glyph_trainable=trainable_table)
    emb, full = model.bert.embeddings, batch()
    b = inputs(full, "fusion")
    args = (b["input_ids"], b["token_type_ids"], b["pinyin_ids"])
    model.eval()
    with torch.no_grad():
        before = emb(*args)
    emb.freeze_nets()
    assert emb.glyph_features.shape == (len(vocab()), emb.tokens.embedding_dim)
    with torch.no_grad():
        assert torch.allclose(emb(*args), before, atol=1e-5)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model(**b, labels=full["labels"]).loss.backward()
    frozen = [*emb.glyph_net.parameters(), *emb.pinyin_net.parameters()] + ([emb.glyphs] if trainable_table else [])
    assert all(p.grad is None and not p.requires_grad for p in frozen)
    assert emb.fuse.weight.grad.abs().sum() > 0  # the projection of the features still trains
    opt.step()
    with torch.no_grad():
        again = emb(*args)
        emb.glyph_features = emb.pinyin_features = None  # back to running the nets
        assert not torch.allclose(again, before, atol=1e-3) and torch.allclose(emb(*args), again, atol=1e-5)
    assert "glyph_features" not in model.state_dict()  # derived, not saved


def test_pre_ln_blocks_and_final_norm():
    post, pre = build(kind="char"), build(kind="char", pre_ln=True)
    assert isinstance(pre.bert.encoder.ln_f, torch.nn.LayerNorm)
    assert isinstance(post.bert.encoder.ln_f, torch.nn.Identity)
    pre.load_state_dict({**pre.state_dict(), **post.state_dict()})  # same weights; pre-LN keeps its ln_f
    block_post, block_pre = post.bert.encoder.blocks[0].eval(), pre.bert.encoder.blocks[0].eval()
    x, mask = torch.randn(2, 5, 32), torch.ones(2, 1, 1, 5, dtype=torch.bool)
    with torch.no_grad():
        expected = x + block_pre.attn(block_pre.ln1(x), mask)
        expected = expected + block_pre.mlp(block_pre.ln2(expected))
        assert torch.allclose(block_pre(x, mask), expected, atol=1e-6)
        assert not torch.allclose(block_post(x, mask), expected, atol=1e-3)


@pytest.mark.parametrize("kind", KINDS)
def test_rotary_positions_give_a_document_the_same_vectors_wherever_it_sits_in_a_packed_row(kind):
    """With rotary positions a score depends on the offset between two tokens only, so a document read at the end of
    a packed row (its own attention block) comes out as it does alone; with learned absolute positions it does not.
    And the rotary model has no position table to save."""
    b = inputs(batch(), kind)
    a_len, b_len = int(b["attention_mask"][0].sum()), int(b["attention_mask"][1].sum())
    row = {k: torch.cat([v[0, :a_len], v[1, :b_len]])[None] for k, v in b.items()}
    alone = {k: v[1:2, :b_len] for k, v in b.items()}
    documents = torch.tensor([[0] * a_len + [1] * b_len])
    for position, same in (("rope", True), ("learned", False)):
        model = build(kind=kind, position=position, hidden_dropout=0.0, attention_dropout=0.0).eval()
        with torch.no_grad():
            packed = model.bert(**row, document_ids=documents)[0, a_len:]
            assert torch.allclose(packed, model.bert(**alone)[0], atol=1e-5) == same, position
    assert any("positions" in k for k in model.state_dict())  # the learned model has its table
    assert not any("positions" in k for k in build(kind=kind, position="rope").state_dict())


def test_rotary_positions_need_an_even_head_size():
    with pytest.raises(ConfigError, match="head size 5 must be even"):
        config("char", hidden_size=20, num_heads=4, position="rope")


def test_factorized_embedding_saves_the_expected_parameters():
    V, P, H, E = len(vocab()), 64, 32, 8
    full, small = build(kind="char"), build(kind="char", embedding_size=E)
    # token/position/segment tables and the embedding LN shrink from H to E wide; the MLM transform
    # maps H → E and its LN is E wide; a projection E → H (with bias) is added.
    saved = (V + P + 2 + 2) * (H - E) + (H * H + H - H * E - E) + 2 * (H - E) - (E * H + H)
    assert n_params(full) - n_params(small) == saved > 0
    assert small.bert.embeddings.tokens.weight.shape == (V, E)
    b = batch()
    out = small(**inputs(b, "char"), labels=b["labels"])
    assert out.logits.shape == (int((b["labels"] != -100).sum()), V)
    fusion = build(kind="fusion", embedding_size=E)
    assert fusion.bert.embeddings.fuse.in_features == 3 * E
    assert fusion(**inputs(b, "fusion"), labels=b["labels"]).loss.isfinite()


def test_layer_sharing_keeps_one_block():
    unshared, shared = build(kind="char", num_layers=4), build(kind="char", num_layers=4, share_layers=True)
    block = n_params(Block(unshared.cfg))
    assert n_params(unshared) - n_params(shared) == 3 * block
    assert len(shared.bert.encoder.blocks) == 1
    # applied four times: the output differs from applying the block once
    once = build(kind="char", num_layers=1)
    once.load_state_dict(shared.state_dict())
    b = inputs(batch(), "char")
    with torch.no_grad():
        assert not torch.allclose(shared.eval().bert(**b), once.eval().bert(**b), atol=1e-3)


@pytest.mark.parametrize("kind", ["char", "fusion"])
def test_masked_only_logits_match_full_logits(kind):
    model = build(kind=kind).eval()
    b = batch()
    with torch.no_grad():
        full = model(**inputs(b, kind)).logits
        out = model(**inputs(b, kind), labels=b["labels"])
    masked = b["labels"] != -100
    assert torch.allclose(out.logits, full[masked], atol=1e-5)
    expected = torch.nn.functional.cross_entropy(full.flatten(0, 1), b["labels"].flatten())
    assert torch.allclose(out.loss, expected, atol=1e-5)


def test_initialize_is_bert_init_and_leaves_the_tables_alone():
    model = build(kind="fusion", pair_head="sop")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.initialize()
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert not p.any(), name
        elif "ln" in name.split(".")[-2]:
            assert (p == 1).all(), name
        elif name == "bert.embeddings.fuse.weight":  # norm-preserving: char block identity, the others orthogonal
            char, glyph, pinyin = p.detach().chunk(3, dim=1)
            assert torch.equal(char, torch.eye(*char.shape))
            for block in (glyph, pinyin):
                assert torch.allclose(block.T @ block, torch.eye(block.shape[1]), atol=1e-5)
        else:
            assert abs(p.std().item() - 0.02) < 0.01 and abs(p.mean().item()) < 0.01, name
    assert torch.equal(model.bert.embeddings.glyphs, torch.as_tensor(glyph_table()))


def test_mlm_decoder_is_tied_to_the_token_table():
    model = build(kind="word")
    assert "mlm.decoder.weight" not in model.state_dict()
    b = batch()
    model(**inputs(b, "word"), labels=b["labels"]).loss.backward()
    grad = model.bert.embeddings.tokens.weight.grad
    # rows of words never fed in still get gradient: through the decoder, which is the same tensor
    assert grad[len(vocab()):].abs().sum() > 0


@pytest.mark.parametrize("pair_head", ["nsp", "sop"])
def test_pair_head_adds_its_loss(pair_head):
    model = build(kind="char", pair_head=pair_head).eval()
    b = batch()
    pair_labels = torch.tensor([0, 1, 0, 1, 1, 0])
    with torch.no_grad():
        mlm_only = model(**inputs(b, "char"), labels=b["labels"])
        both = model(**inputs(b, "char"), labels=b["labels"], pair_labels=pair_labels)
    assert both.pair_logits.shape == (6, 2)
    expected = mlm_only.loss + torch.nn.functional.cross_entropy(both.pair_logits, pair_labels)
    assert torch.allclose(both.loss, expected)
    with pytest.raises(ValueError, match="pair_head"):
        build(kind="char")(**inputs(b, "char"), pair_labels=pair_labels)


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_round_trip(kind, tmp_path):
    model = build(kind=kind).eval()
    folder = model.save_pretrained(tmp_path / kind)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    meta = json.loads((folder / "config.json").read_text())
    assert meta["architecture"] == "ZhBertForPretraining" and meta["model"]["embedding"] == kind
    if kind == "fusion":
        with safe_open(folder / "model.safetensors", "pt") as f:
            assert f.get_tensor("bert.embeddings.glyphs").dtype == torch.uint8
            assert torch.equal(f.get_tensor("bert.embeddings.pinyin_letters"), spell_pinyin(pinyin_vocab()))
    loaded = ZhBertForPretraining.from_pretrained(folder).eval()
    assert loaded.cfg == model.cfg
    b = batch()
    with torch.no_grad():
        assert torch.equal(model(**inputs(b, kind)).logits, loaded(**inputs(b, kind)).logits)


def test_pretrained_trunk_loads_into_fine_tuning_heads(tmp_path):
    pretrained = build(kind="fusion")
    folder = pretrained.save_pretrained(tmp_path / "pre")
    b = batch()
    clf = ZhBertForSequenceClassification.from_pretrained(folder, num_labels=3).eval()
    for name, tensor in pretrained.bert.state_dict().items():
        assert torch.equal(clf.bert.state_dict()[name], tensor), name
    out = clf(**inputs(b, "fusion"), labels=torch.tensor([0, 1, 2, 0, 1, 2]))
    assert out.logits.shape == (6, 3) and out.loss.isfinite()
    clf.save_pretrained(tmp_path / "clf")
    again = ZhBertForSequenceClassification.from_pretrained(tmp_path / "clf").eval()
    assert again.num_labels == 3
    with torch.no_grad():
        assert torch.equal(again(**inputs(b, "fusion")).logits, clf(**inputs(b, "fusion")).logits)


def test_mean_pooling_reads_the_real_tokens_and_is_kept_in_the_folder(tmp_path):
    """A ``mean`` sequence head reads the mean of the real tokens' states: padding more changes nothing, the
    pooler's input is that mean (not [CLS]), and the choice travels in config.json."""
    clf = build(ZhBertForSequenceClassification, head={"num_labels": 2, "pooling": "mean"}).eval()
    b = inputs(batch(T=24), "char")
    longer = {k: torch.nn.functional.pad(v, (0, 8)) for k, v in b.items()}  # 8 more padded positions
    with torch.no_grad():
        logits = clf(**b).logits
        assert torch.allclose(logits, clf(**longer).logits, atol=1e-5)
        h, keep = clf.bert(**b), b["attention_mask"].bool()
        means = torch.stack([h[i][keep[i]].mean(0) for i in range(len(h))])
        assert torch.allclose(logits, clf.head.out(torch.tanh(clf.head.pool(means))), atol=1e-5)
        assert not torch.allclose(logits, clf.head.out(torch.tanh(clf.head.pool(h[:, 0]))), atol=1e-3)
    again = ZhBertForSequenceClassification.from_pretrained(clf.save_pretrained(tmp_path / "clf")).eval()
    assert again.head.pooling == "mean"
    with torch.no_grad():
        assert torch.equal(again(**b).logits, logits)
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        build(ZhBertForSequenceClassification, head={"num_labels": 2, "pooling": "max"})


def test_token_classification_and_span_heads():
    b = batch()
    tagger = build(ZhBertForTokenClassification, head={"num_labels": 5})
    tags = torch.where(b["attention_mask"] == 1, b["input_ids"] % 5, torch.full_like(b["input_ids"], -100))
    out = tagger(**inputs(b, "char"), labels=tags)
    assert out.logits.shape == (6, 24, 5) and out.loss.isfinite()
    span = build(ZhBertForSpanExtraction)
    out = span(**inputs(b, "char"), start_positions=torch.tensor([1, 2, 3, 1, 2, 3]),
               end_positions=torch.tensor([4, 5, 6, 4, 5, 6]))
    assert out.logits.shape == (6, 24, 2) and out.loss.isfinite()
    assert torch.isinf(out.logits[b["attention_mask"] == 0]).all()  # padding is never an answer


@pytest.mark.parametrize("kind", KINDS)
def test_a_few_steps_lower_the_loss(kind):
    model = build(kind=kind, hidden_dropout=0.0, attention_dropout=0.0).train()
    b = batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = model(**inputs(b, kind), labels=b["labels"]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_wrong_tables_are_refused():
    cfg = config("fusion")
    with pytest.raises(ValueError, match="glyph table"):
        ZhBert(cfg, glyphs=glyph_table()[:-1], pinyin_letters=spell_pinyin(pinyin_vocab()))
    with pytest.raises(ValueError, match="uint8"):
        ZhBert(cfg, glyphs=glyph_table().astype(np.float32), pinyin_letters=spell_pinyin(pinyin_vocab()))
    with pytest.raises(ValueError, match="pinyin"):
        ZhBert(cfg, glyphs=glyph_table(), pinyin_letters=spell_pinyin(pinyin_vocab()[:-1]))
    with pytest.raises(ValueError, match="pinyin_ids"):
        ZhBert(cfg, **tables(cfg))(**inputs(batch(), "char"))
    with pytest.raises(TypeError):
        ZhBert(config("char"), glyphs=glyph_table())
    assert dataclasses.replace(cfg, embedding="char").token_vocab_size == len(vocab())
