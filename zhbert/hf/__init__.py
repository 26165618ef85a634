"""Hugging Face folders: `zhbert export` writes one from an export folder (``zhbert.hf.export``), and
``zhbert.hf.inputs`` makes the inputs of a word or fusion model in such a folder from text. Nothing here imports
``transformers``, except the modeling code written into the folder (``zhbert.hf.modeling``).
"""
