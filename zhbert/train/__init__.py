"""Pretraining: typed config (config.py), data per rank (data.py), the loop (pretrain.py), metrics
(metrics.py), and DeepSpeed — imported by engine.py alone."""
