import math
from pathlib import Path

import pytest

from zhbert.config import ConfigError, config_hash, dump_toml, load, override, parse_overrides, tomllib
from zhbert.data.prep import PrepConfig

CONFIGS = Path(__file__).parent.parent / "configs"


def test_defaults_file_and_overrides_merge(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('num_proc = 3\n[pack]\nmax_len = 256\n[normalize]\nt2s = true\n')
    cfg = load(PrepConfig, path, ["--pack.max_len=64", "segment.user_dicts=['a.txt']", "output=out dir"])
    assert (cfg.num_proc, cfg.pack.max_len, cfg.normalize.t2s) == (3, 64, True)
    assert cfg.segment.user_dicts == ["a.txt"] and cfg.output == "out dir"
    assert cfg.filter.min_chars == PrepConfig().filter.min_chars


@pytest.mark.parametrize("delta, message", [
    ({"num_prc": 2}, "unknown key(s) num_prc"),
    ({"pack": {"max_length": 2}}, "unknown key(s) pack.max_length"),
    ({"num_proc": "two"}, "num_proc must be int"),
    ({"num_proc": True}, "num_proc must be int"),
    ({"segment": {"backend": "thulac"}}, "segment.backend must be one of ['rjieba', 'jieba']"),
    ({"inputs": "a.txt"}, "inputs must be a list"),
])
def test_bad_configs_fail_at_load_naming_the_key(tmp_path, delta, message):
    from zhbert.config import from_dict

    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        from_dict(PrepConfig, delta)


def test_overrides_parse_toml_values():
    assert parse_overrides(["a.b=1", "a.c=true", "d=[1, 2]", "e=plain text"]) == \
        {"a": {"b": 1, "c": True}, "d": [1, 2], "e": "plain text"}
    with pytest.raises(ConfigError):
        parse_overrides(["novalue"])


ODD = 'C:\\Users\\a "quoted" dir\\\u5317\u4eac \U00029e3d\U0001f600\n\ttab\x00\x1f\x7f\u2028 \'single\''


def test_toml_written_by_the_helper_reads_back_exactly():
    table = {"path": ODD, "plain": "data/demo", "n": 3, "neg": -7, "x": 0.1, "tiny": 1e-300, "big": 1e300,
             "inf": -math.inf, "flags": [True, False], "seeds": [1, 2, 3], "paths": [ODD, ""], "odd key = ✓": ODD,
             "variants": [{"name": ODD, "model": "m.toml", "whole_word_prob": 0.0}],
             "data": {"shards": ODD, "deeper": {"vocab": ODD, "empty": []}}, "empty": {}}
    assert tomllib.loads(dump_toml(table)) == table
    assert math.isnan(tomllib.loads(dump_toml({"v": math.nan}))["v"])
    assert parse_overrides([override("a.b", ODD), override("c", [ODD, 2.5])]) == {"a": {"b": ODD}, "c": [ODD, 2.5]}
    with pytest.raises(ValueError, match="lone surrogate"):
        override("path", "bad\udcff")  # a filename decoded with surrogateescape: no TOML string holds it


def test_config_hash_is_stable_and_sensitive():
    assert config_hash(PrepConfig()) == config_hash(PrepConfig())
    assert config_hash(PrepConfig()) != config_hash(load(PrepConfig, None, ["pack.max_len=64"]))


def _config_class(folder: str):
    from zhbert.compare import CompareConfig
    from zhbert.data.glyphs import GlyphConfig
    from zhbert.finetune.run import FinetuneConfig
    from zhbert.finetune.tasks import TaskSpec
    from zhbert.model.config import ModelConfig
    from zhbert.train.config import PretrainConfig
    from zhbert.train.masking import MaskingConfig

    return {"data": PrepConfig, "glyphs": GlyphConfig, "masking": MaskingConfig, "model": ModelConfig,
            "pretrain": PretrainConfig, "finetune": FinetuneConfig, "tasks": TaskSpec, "compare": CompareConfig}[folder]


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*/*.toml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_config_loads(path):
    """Each folder of configs/ maps to its dataclass; a new folder without a mapping fails here."""
    load(_config_class(path.parent.name), path)
