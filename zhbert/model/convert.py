"""Hugging Face BERT ↔ zhbert, for the char model with post-LN (the layout BERT has).

- ``from_hf_bert(state_dict, hf_config)``: a ``BertForMaskedLM`` / ``BertForPreTraining`` state dict
  and its ``config.to_dict()`` → ``ZhBertForPretraining`` giving the same logits.
- ``from_hf_folder(folder)``: the same from a HF export folder (config.json + model.safetensors).
- ``export_hf_bert(model, folder)``: write a folder that ``BertForMaskedLM.from_pretrained`` loads.

Plain tensor renaming: none of this imports ``transformers`` (a dev/test dependency only).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from zhbert.files import atomic_write, write_text
from zhbert.model.config import ModelConfig
from zhbert.model.model import ZhBertForPretraining

# ModelConfig field ↔ BertConfig field
_CONFIG_NAMES = {
    "vocab_size": "vocab_size", "hidden_size": "hidden_size", "num_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads", "intermediate_size": "intermediate_size",
    "max_position": "max_position_embeddings", "type_vocab_size": "type_vocab_size",
    "hidden_dropout": "hidden_dropout_prob", "attention_dropout": "attention_probs_dropout_prob",
    "layer_norm_eps": "layer_norm_eps", "initializer_range": "initializer_range",
}


def _key_pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    """(zhbert key, HF key) for every tensor except the fused q/k/v."""
    pairs = [("bert.embeddings.tokens", "bert.embeddings.word_embeddings"),
             ("bert.embeddings.positions", "bert.embeddings.position_embeddings"),
             ("bert.embeddings.segments", "bert.embeddings.token_type_embeddings"),
             ("bert.embeddings.ln", "bert.embeddings.LayerNorm"),
             ("mlm.dense", "cls.predictions.transform.dense"),
             ("mlm.ln", "cls.predictions.transform.LayerNorm")]
    for i in range(cfg.num_layers):
        ours, hf = f"bert.encoder.blocks.{i}", f"bert.encoder.layer.{i}"
        pairs += [(f"{ours}.attn.proj", f"{hf}.attention.output.dense"),
                  (f"{ours}.ln1", f"{hf}.attention.output.LayerNorm"),
                  (f"{ours}.mlp.fc", f"{hf}.intermediate.dense"),
                  (f"{ours}.mlp.proj", f"{hf}.output.dense"),
                  (f"{ours}.ln2", f"{hf}.output.LayerNorm")]
    if cfg.pair_head != "none":
        pairs += [("pair.pool", "bert.pooler.dense"), ("pair.out", "cls.seq_relationship")]
    names = [(f"{a}.weight", f"{b}.weight") for a, b in pairs]
    names += [(f"{a}.bias", f"{b}.bias") for a, b in pairs if "embeddings" not in a or a.endswith(".ln")]
    return names + [("mlm.bias", "cls.predictions.bias")]


def bert_mismatches(cfg: ModelConfig) -> list[str]:
    """What in ``cfg`` Hugging Face's BERT has no place for; empty for the plain BERT layout."""
    return [name for name, bad in (("embedding != 'char'", cfg.embedding != "char"), ("pre_ln", cfg.pre_ln),
                                   ("share_layers", cfg.share_layers), ("rotary positions", cfg.position != "learned"),
                                   ("embedding_size", cfg.embedding_size not in (None, cfg.hidden_size)))
            if bad]


def _check_exportable(cfg: ModelConfig) -> None:
    if wrong := bert_mismatches(cfg):
        raise ValueError(f"only the plain BERT layout maps to Hugging Face BERT; this config has {', '.join(wrong)}")


def config_from_hf(hf_config: Mapping[str, Any]) -> ModelConfig:
    """A ``BertConfig.to_dict()`` → ModelConfig (post-LN char model), refusing variants zhbert lacks."""
    if hf_config.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"hidden_act {hf_config['hidden_act']!r}: zhbert uses exact GELU")
    if hf_config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError("only absolute position embeddings are supported")
    return ModelConfig(embedding="char", **{ours: hf_config[hf] for ours, hf in _CONFIG_NAMES.items()})


def from_hf_bert(state_dict: Mapping[str, torch.Tensor], hf_config: Mapping[str, Any]) -> ZhBertForPretraining:
    """HF ``BertForMaskedLM`` (or ``BertForPreTraining``: pooler + NSP become the pair head)."""
    cfg = config_from_hf(hf_config)
    if "cls.seq_relationship.weight" in state_dict:
        cfg.pair_head = "nsp"
    state = {ours: state_dict[hf] for ours, hf in _key_pairs(cfg)}
    for i in range(cfg.num_layers):
        hf = f"bert.encoder.layer.{i}.attention.self"
        for part in ("weight", "bias"):
            state[f"bert.encoder.blocks.{i}.attn.qkv.{part}"] = torch.cat(
                [state_dict[f"{hf}.{name}.{part}"] for name in ("query", "key", "value")])
    model = ZhBertForPretraining(cfg)
    model.load_state_dict(state, strict=True)
    return model


def from_hf_folder(folder: str | Path) -> ZhBertForPretraining:
    """A HF BERT export folder with config.json and model.safetensors (pickled .bin is not read)."""
    folder = Path(folder)
    hf_config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return from_hf_bert(load_file(str(folder / "model.safetensors")), hf_config)


def export_hf_bert(model: ZhBertForPretraining, folder: str | Path) -> Path:
    """Write config.json + model.safetensors that ``transformers.BertForMaskedLM`` loads.

    The decoder weight is written as its own copy of the token table (safetensors stores no shared
    tensors); HF ties the two again on load. The tokenizer files are the export step's business.
    """
    cfg = model.cfg
    _check_exportable(cfg)
    ours = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    state = {hf: ours[mine].clone() for mine, hf in _key_pairs(cfg) if not hf.startswith(("bert.pooler", "cls.seq"))}
    state["cls.predictions.decoder.weight"] = ours["bert.embeddings.tokens.weight"].clone()
    state["cls.predictions.decoder.bias"] = ours["mlm.bias"].clone()
    for i in range(cfg.num_layers):
        hf = f"bert.encoder.layer.{i}.attention.self"
        for part in ("weight", "bias"):
            q, k, v = ours[f"bert.encoder.blocks.{i}.attn.qkv.{part}"].chunk(3)
            state.update({f"{hf}.query.{part}": q.clone(), f"{hf}.key.{part}": k.clone(),
                          f"{hf}.value.{part}": v.clone()})
    hf_config = {hf: getattr(cfg, mine) for mine, hf in _CONFIG_NAMES.items()}
    hf_config.update(model_type="bert", architectures=["BertForMaskedLM"], hidden_act="gelu",
                     position_embedding_type="absolute", pad_token_id=0, tie_word_embeddings=True)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / "model.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"format": "pt"})
    write_text(folder / "config.json", json.dumps(hf_config, indent=2) + "\n")
    return folder
