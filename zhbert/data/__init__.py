"""Data preparation: sources, readers, normalisation, filters, segmentation, pinyin, vocabularies, shards."""
