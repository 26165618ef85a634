"""Hugging Face folders: `zhbert export` writes one from an export folder (``zhbert.hf.export``),
``zhbert.hf.inputs`` makes the inputs of a word or fusion model in such a folder from text, and `zhbert pretrain
--init` starts a run from a BERT folder (``zhbert.model.hf_init``). Nothing here imports
``transformers``, except the modeling code written into the folder (``zhbert.hf.modeling``).
"""
