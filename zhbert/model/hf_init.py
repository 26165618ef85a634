"""`zhbert pretrain --init FOLDER`: a fresh run starts from a Hugging Face BERT folder (``BertForMaskedLM`` or
``BertForPreTraining``: config.json + model.safetensors; pickled weights are not read).

What is taken is what every kind shares with BERT: the token rows of the char vocab, positions, segments, the
embedding LayerNorm, the encoder and the MLM head (transform and the bias of the char rows), and the pair head when
both have one. A char model so starts as the BERT it came from. A fusion model's glyph and pinyin nets and its
fusion Linear, and a word model's rows of multi-char words, start fresh (the fusion Linear's char block is the
identity at init, so a character still enters as BERT's vector, joined by fresh glyph and pinyin features).

Rows follow the token strings when the folder has a vocab.txt: the row of each token of the run's vocab is the
folder's row of the same string, wherever it is. A token the folder's vocab lacks keeps its fresh row (and MLM bias
0), and is counted in the message. Without a vocab.txt rows go by id, and the vocab sizes must agree.
"""

from __future__ import annotations

from pathlib import Path

import torch

from zhbert.files import read_json
from zhbert.layout import VOCAB
from zhbert.model import ZhBertForPretraining
from zhbert.model.convert import from_hf_folder

# what must agree between the run's model and BERT for the trunk to carry over
SHAPE = ("hidden_size", "num_layers", "num_heads", "intermediate_size", "max_position", "type_vocab_size", "emb_dim",
         "pre_ln", "share_layers", "position")


def init_from_hf(model: ZhBertForPretraining, folder: str | Path, tokens: list[str]) -> str:
    """Copy the shared parts of the BERT in ``folder`` into ``model`` (whose char vocab is ``tokens``, line i =
    id i); returns a line saying what was taken."""
    folder = Path(folder)
    if not (folder / "model.safetensors").exists():
        raise FileNotFoundError(f"{folder}: no model.safetensors (--init reads safetensors only, never pickled "
                                "pytorch_model.bin; convert it with transformers' save_pretrained)")
    model_type = read_json(folder / "config.json").get("model_type")
    if model_type != "bert":
        raise ValueError(f"--init {folder}: model_type {model_type!r}; only BERT folders (model_type 'bert') map "
                         "onto zhbert's trunk")
    bert = from_hf_folder(folder)
    ours, theirs = model.cfg, bert.cfg
    differ = [f"{name} {getattr(ours, name)} vs {getattr(theirs, name)}" for name in SHAPE
              if getattr(ours, name) != getattr(theirs, name)]
    if differ:
        raise ValueError(f"--init {folder}: the model differs in shape from the run's: {', '.join(differ)} (the "
                         "run's first; set model.* to the folder's)")
    ids, found = _rows(folder, tokens, theirs.vocab_size)
    source = bert.state_dict()
    state = model.state_dict()
    n = len(tokens)
    for key, value in source.items():
        if key in ("bert.embeddings.tokens.weight", "mlm.bias"):
            state[key][:n][found] = value[ids[found]]
        elif key.startswith("pair.") and model.pair is None:
            continue
        elif key in state and (ours.embedding == "char" or not key.startswith("bert.embeddings.")
                               or key.split(".")[2] in ("positions", "segments", "ln")):
            if state[key].shape != value.shape:
                raise ValueError(f"--init {folder}: {key} has shape {tuple(value.shape)}, the run's "
                                 f"{tuple(state[key].shape)}")
            state[key] = value
    model.load_state_dict(state, strict=True)
    missing = n - int(found.sum())
    return (f"init: trunk, MLM head and {int(found.sum()):,} of {n:,} char rows from {folder}"
            + (f"; {missing:,} tokens not in its vocab.txt start fresh" if missing else ""))


def _rows(folder: Path, tokens: list[str], rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The folder's row of each run token (n,) and whether it has one (n,) bool."""
    path = folder / VOCAB
    if not path.exists():
        if rows != len(tokens):
            raise ValueError(f"--init {folder}: {rows} token rows but the run's vocab has {len(tokens)}, and the "
                             "folder has no vocab.txt to match them by string")
        return torch.arange(rows), torch.ones(rows, dtype=torch.bool)
    theirs = path.read_text(encoding="utf-8").removesuffix("\n").split("\n")  # not splitlines(), as CharVocab
    if len(theirs) != rows:
        raise ValueError(f"--init {folder}: vocab.txt has {len(theirs)} lines but the model {rows} token rows")
    index = {t: i for i, t in enumerate(theirs)}
    ids = torch.tensor([index.get(t, -1) for t in tokens])
    return ids.clamp(min=0), ids >= 0
