"""Parity with Hugging Face BERT (random weights, built locally) and the HF export folder."""

from __future__ import annotations

import pytest
import torch
import transformers  # a dev dependency (pyproject's dev extra): never skipped

from zhbert.model import ModelConfig, ZhBertForPretraining
from zhbert.model.convert import export_hf_bert, from_hf_bert, from_hf_folder

SIZES = dict(vocab_size=500, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128,
             max_position_embeddings=64)


def randomise(model: torch.nn.Module) -> torch.nn.Module:
    """Every tensor random (LayerNorm gains around 1, biases and q/k/v included), not BERT init's
    ones and zeros, so a tensor mapped to the wrong place shows in the logits."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            gain = name.endswith(("LayerNorm.weight", "ln.weight", "ln1.weight", "ln2.weight"))
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1 + (1.0 if gain else 0.0))
    return model


def hf_batch(vocab: int = 500) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, vocab, (3, 20), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 14:] = 0
    mask[2, 7:] = 0
    types = torch.zeros_like(ids)
    types[:, 10:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def max_diff_at_real_tokens(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    return (a - b)[mask.bool()].abs().max().item()


def test_logits_match_hf_bert_for_masked_lm():
    hf = randomise(transformers.BertForMaskedLM(transformers.BertConfig(**SIZES))).eval()
    ours = from_hf_bert(hf.state_dict(), hf.config.to_dict()).eval()
    assert ours.cfg.embedding == "char" and not ours.cfg.pre_ln and ours.cfg.num_layers == 3
    b = hf_batch()
    with torch.no_grad():
        expected, got = hf(**b).logits, ours(**b).logits
    assert max_diff_at_real_tokens(expected, got, b["attention_mask"]) <= 1e-4
    # the masked-only path agrees with HF too
    labels = torch.full_like(b["input_ids"], -100)
    labels[:, 3] = b["input_ids"][:, 3]
    with torch.no_grad():
        assert torch.allclose(ours(**b, labels=labels).logits, expected[:, 3], atol=1e-4)


def test_nsp_head_of_bert_for_pretraining_maps_to_the_pair_head():
    hf = randomise(transformers.BertForPreTraining(transformers.BertConfig(**SIZES))).eval()
    ours = from_hf_bert(hf.state_dict(), hf.config.to_dict()).eval()
    assert ours.cfg.pair_head == "nsp"
    b = hf_batch()
    with torch.no_grad():
        expected, got = hf(**b), ours(**b)
    assert max_diff_at_real_tokens(expected.prediction_logits, got.logits, b["attention_mask"]) <= 1e-4
    assert torch.allclose(expected.seq_relationship_logits, got.pair_logits, atol=1e-4)


def test_export_loads_in_transformers_with_the_same_logits(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=500, hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128,
                      max_position=64)
    ours = randomise(ZhBertForPretraining(cfg)).eval()
    folder = export_hf_bert(ours, tmp_path / "hf")
    hf, info = transformers.BertForMaskedLM.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    hf.eval()
    b = hf_batch()
    with torch.no_grad():
        assert max_diff_at_real_tokens(hf(**b).logits, ours(**b).logits, b["attention_mask"]) <= 1e-4
    # and back: the exported folder converts into an identical zhbert model
    again = from_hf_folder(folder).eval()
    with torch.no_grad():
        assert torch.equal(again(**b).logits, ours(**b).logits)


@pytest.mark.parametrize("change", [{"pre_ln": True}, {"share_layers": True}, {"embedding_size": 16},
                                    {"position": "rope"}, {"embedding": "word", "word_vocab_size": 600}])
def test_layouts_hf_bert_lacks_are_refused(change, tmp_path):
    cfg = ModelConfig(**{**dict(vocab_size=500, hidden_size=64, num_layers=2, num_heads=4,
                                intermediate_size=128, max_position=64), **change})
    with pytest.raises(ValueError, match="Hugging Face"):
        export_hf_bert(ZhBertForPretraining(cfg), tmp_path)


def test_hf_variants_zhbert_lacks_are_refused():
    hf_config = transformers.BertConfig(**SIZES, hidden_act="relu").to_dict()
    with pytest.raises(ValueError, match="GELU"):
        from_hf_bert({}, hf_config)
