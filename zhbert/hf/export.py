"""An export folder → a Hugging Face folder (`zhbert export`).

char          ``BertForMaskedLM`` weights (zhbert.model.convert) and a fast tokenizer whose normaliser is zhbert's
              (see ``char_tokenizer``): ``pipeline("fill-mask", model=folder)`` runs without zhbert.
word, fusion  ``modeling_zhbert.py`` (zhbert's own model source, zhbert/hf/remote.py) named by ``auto_map`` in
              config.json, weights with the fusion tables inside, and the export's vocab and text files, from
              which ``zhbert.hf.inputs`` makes the inputs: ``AutoModelForMaskedLM.from_pretrained(folder,
              trust_remote_code=True)`` loads the model without zhbert; its inputs need zhbert (jieba, pypinyin).
              A char model that BERT cannot hold goes this way too (``bert_mismatches``: rotary positions,
              pre-LN, shared layers, a factorised embedding).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from safetensors.torch import save_file
from tokenizers import normalizers

from zhbert.config import to_dict
from zhbert.data.text import NormalizeConfig
from zhbert.data.vocab import CharVocab
from zhbert.export import load_export
from zhbert.files import atomic_write, write_json, write_text
from zhbert.hf.remote import FILENAME, modeling_source
from zhbert.layout import CONFIG_FILE, WEIGHTS_FILE
from zhbert.model import ZhBertForPretraining
from zhbert.model.convert import bert_mismatches, export_hf_bert

SPECIALS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
            "mask_token": "[MASK]"}


def export_hf(export: str | Path, out: str | Path) -> Path:
    """Write the Hugging Face folder of the model in ``export`` to ``out``."""
    exp, out = load_export(export), Path(out)
    model = ZhBertForPretraining.from_pretrained(exp.folder)
    if not bert_mismatches(exp.model):
        export_hf_bert(model, out)
        char_tokenizer(exp.folder, out, exp.text.normalize, exp.model.max_position)
    else:
        _remote_folder(model, exp.folder, out)
    return out


def char_tokenizer(export: Path, out: Path, normalize: NormalizeConfig, max_len: int) -> None:
    """tokenizer.json, vocab.txt, tokenizer_config.json and special_tokens_map.json of a char model.

    zhbert normalises text (NFC, full-width forms to ASCII) before its BERT tokenizer sees it; here those steps
    go into the tokenizer's own normaliser, ahead of the BERT normaliser, so the tokenizer alone gives zhbert's
    ids. The class is ``PreTrainedTokenizerFast``: it runs tokenizer.json as written, where Transformers 5's
    ``BertTokenizer`` rebuilds a plain BERT normaliser and would read ，！？ as [UNK]. Lowercasing, accent
    stripping and one token per CJK character are BERT's, as in zhbert's vocab. What cannot be carried: OpenCC's
    traditional → simplified conversion (``normalize.t2s``), which a warning names."""
    tokenizer = CharVocab.load(export).tokenizer  # with its [CLS] … [SEP] post-processor
    steps = [normalizers.NFC()] if normalize.nfc else []
    if normalize.fullwidth_to_halfwidth:
        steps += [normalizers.Replace(chr(c), chr(c - 0xFEE0)) for c in range(0xFF01, 0xFF5F)]
        steps.append(normalizers.Replace("\u3000", " "))
    tokenizer.normalizer = normalizers.Sequence([*steps, tokenizer.normalizer])
    with atomic_write(out / "tokenizer.json") as tmp:
        tokenizer.save(str(tmp))
    shutil.copyfile(export / "vocab.txt", out / "vocab.txt")
    write_json(out / "special_tokens_map.json", SPECIALS)
    write_json(out / "tokenizer_config.json",
               {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_len, **SPECIALS,
                "model_input_names": ["input_ids", "token_type_ids", "attention_mask"]})  # as BertTokenizer
    if normalize.t2s:
        print(f"warning: {export} was pretrained on text converted to simplified Chinese (normalize.t2s); the "
              "Hugging Face tokenizer cannot do that: convert traditional text before it", file=sys.stderr)


def _remote_folder(model: ZhBertForPretraining, export: Path, out: Path) -> None:
    """config.json with ``auto_map``, modeling_zhbert.py, model.safetensors (the wrapper's keys: ``zhbert.`` + zhbert's,
    and the glyph centring reference, see zhbert/hf/modeling.py) and the export's other files (vocabularies, text
    settings and what they name), which ``zhbert.hf.inputs`` reads."""
    out.mkdir(parents=True, exist_ok=True)
    for path in export.iterdir():
        if path.is_file() and path.name not in (CONFIG_FILE, WEIGHTS_FILE):
            shutil.copyfile(path, out / path.name)
    write_text(out / FILENAME, modeling_source())
    state = {f"zhbert.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    reference = getattr(model.bert.embeddings, "glyph_reference", None)
    if reference is not None:
        state["zhbert.bert.embeddings.glyph_reference"] = reference.contiguous()
    with atomic_write(out / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    module = FILENAME.removesuffix(".py")
    write_json(out / CONFIG_FILE, {
        "model_type": "zhbert", "architectures": ["ZhBertForMaskedLM"],
        "auto_map": {"AutoConfig": f"{module}.ZhBertConfig", "AutoModelForMaskedLM": f"{module}.ZhBertForMaskedLM"},
        "zhbert": to_dict(model.cfg)})
