"""The command line: verbs listed, overrides checked, errors reported with an exit code."""

from __future__ import annotations

import subprocess
import sys

from zhbert.cli import main


def test_help_lists_the_verbs():
    out = subprocess.run([sys.executable, "-m", "zhbert.cli", "--help"], capture_output=True, text=True, check=True)
    for verb in ("corpus", "prep", "prep-merge", "vocab", "glyphs", "demo"):
        assert verb in out.stdout


def test_bad_override_and_bad_input_exit_non_zero(tmp_path, capsys):
    assert main(["prep", str(tmp_path), "--pack.max_length=3"]) == 2
    assert "unknown key(s) pack.max_length" in capsys.readouterr().err
    assert main(["prep", str(tmp_path / "nope.txt"), "--vocab", str(tmp_path)]) == 1
    assert f"{tmp_path}/tokenizer.json is missing; build it with `zhbert vocab char" in capsys.readouterr().err
    assert main(["prep", "stray", "--oops"]) == 2


def test_stray_arguments_are_refused_where_no_overrides_are_taken(capsys):
    import pytest

    with pytest.raises(SystemExit) as err:
        main(["corpus", "fetch", "--typo=1"])
    assert err.value.code == 2 and "unrecognised arguments: --typo=1" in capsys.readouterr().err


def test_paths_with_quotes_and_backslashes_reach_the_config(tmp_path):
    from zhbert.cli import _prep_flag_overrides, build_parser
    from zhbert.config import load
    from zhbert.data.prep import PrepConfig

    odd = str(tmp_path / 'a "quoted" \\ dir 𩸽😀')  # beyond the BMP: json.dumps writes surrogates TOML refuses
    args, _ = build_parser().parse_known_args(["prep", odd, "--out", odd, "--num-proc", "2", "--encoding", "gb18030"])
    cfg = load(PrepConfig, None, _prep_flag_overrides(args))
    assert cfg.inputs == [odd] and cfg.output == odd and cfg.num_proc == 2 and cfg.read.encoding == "gb18030"
