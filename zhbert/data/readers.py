"""Readers: files of any supported layout → documents ``{"id", "text", "source"}``.

Layouts: .txt (one document per line, or blank-line separated paragraphs), .jsonl (a configurable
text field), .parquet, and a folder written by ``datasets.save_to_disk``. Encodings: UTF-8, UTF-8
with BOM and GB18030, detected from the first bytes or forced. A file that cannot be read at all is
refused with an `InputError` naming it; a line that cannot be decoded or parsed is dropped and
counted with its location, never lost silently.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from zhbert.data.tally import Tally

SAMPLE_BYTES = 1 << 16
NOT_INPUTS = {"manifest.json", "state.json", "dataset_info.json"}  # artefacts that sit beside data files
TEXT_SUFFIXES = {".txt": "txt", ".text": "txt", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


class InputError(ValueError):
    """An input file that cannot be read as text; the message names the file."""


@dataclass
class ReadConfig:
    """How input files are turned into documents."""

    text_field: str = "text"
    """Column / JSON key holding the text (jsonl, parquet, datasets folders)."""
    id_field: str = "id"
    """Column / JSON key holding a document id; where absent the id is ``file:line``."""
    encoding: str | None = None
    """Force an encoding (e.g. "gb18030"); by default UTF-8, UTF-8 with BOM or GB18030 is detected."""
    txt_documents: Literal["line", "paragraph"] = "line"
    """.txt files: one document per line, or paragraphs separated by blank lines."""


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files and folders → a sorted list of input paths (a `datasets` folder counts as one input)."""
    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if path.is_dir() and not _is_datasets_folder(path):
            found = sorted(p for p in path.rglob("*")
                           if p.suffix in TEXT_SUFFIXES and p.name not in NOT_INPUTS and p.is_file())
            if not found:
                raise InputError(f"{path}: folder holds no {'/'.join(sorted(TEXT_SUFFIXES))} files")
            out.extend(found)
        else:
            out.append(path)
    return out


def _is_datasets_folder(path: Path) -> bool:
    return (path / "state.json").exists() or (path / "dataset_dict.json").exists()


def layout_of(path: Path) -> str:
    if path.is_dir():
        return "datasets"
    try:
        return TEXT_SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise InputError(f"{path}: unknown input type {path.suffix!r}; "
                         f"expected {', '.join(sorted(TEXT_SUFFIXES))} or a datasets folder") from None


def detect_encoding(path: Path, sample: bytes) -> str:
    """Decide a file's encoding from its first bytes; refuse what is not text."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputError(f"{path}: UTF-16 text is not supported; convert it first (iconv -f utf-16 -t utf-8)")
    controls = sum(1 for b in sample if b < 32 and b not in b"\t\n\r\f")
    if sample and controls / len(sample) > 0.05:
        raise InputError(f"{path}: looks binary ({controls / len(sample):.0%} control bytes in the first "
                         f"{len(sample)} bytes); not a text file")
    for encoding in ("utf-8", "gb18030"):
        try:
            codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
            return encoding
        except UnicodeDecodeError:
            pass
    lines = sample.split(b"\n")[:-1] or [sample]
    good = sum(1 for line in lines if _decodes(line, "utf-8"))
    if good / len(lines) >= 0.5:  # mostly UTF-8, some damaged lines: read it, drop and count those lines
        return "utf-8"
    raise InputError(f"{path}: neither UTF-8 nor GB18030 ({good}/{len(lines)} sample lines decode as UTF-8); "
                     f"pass --encoding if you know it")


def _decodes(raw: bytes, encoding: str) -> bool:
    try:
        raw.decode(encoding)
        return True
    except UnicodeDecodeError:
        return False


def read_documents(path: Path, cfg: ReadConfig, tally: Tally) -> Iterator[dict[str, str]]:
    """Yield documents of one input; undecodable or malformed lines are dropped into ``tally``."""
    layout = layout_of(path)
    if layout == "parquet":
        yield from _read_parquet(path, cfg)
    elif layout == "datasets":
        yield from _read_datasets(path, cfg)
    else:
        lines = _decoded_lines(path, cfg, tally)
        yield from (_txt_documents if layout == "txt" else _jsonl_documents)(path, lines, cfg, tally)


def _decoded_lines(path: Path, cfg: ReadConfig, tally: Tally) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per line; text is None where the line does not decode (already tallied)."""
    with open(path, "rb") as f:
        encoding = cfg.encoding or detect_encoding(path, f.read(SAMPLE_BYTES))
        f.seek(0)
        for lineno, raw in enumerate(f, 1):
            if lineno == 1 and encoding == "utf-8-sig":
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                yield lineno, raw.decode("utf-8" if encoding == "utf-8-sig" else encoding).rstrip("\r\n")
            except UnicodeDecodeError:
                tally.add("documents_in")
                tally.drop("undecodable", f"{path}:{lineno}")
                yield lineno, None


def _txt_documents(path: Path, lines, cfg: ReadConfig, tally: Tally) -> Iterator[dict[str, str]]:
    if cfg.txt_documents == "line":
        for lineno, text in lines:
            if text is not None:
                yield {"id": f"{path}:{lineno}", "text": text, "source": str(path)}
        return
    para: list[str] = []
    first = 0
    for lineno, text in lines:
        if text is not None and text.strip():
            first = first or lineno
            para.append(text)
        elif para:
            yield {"id": f"{path}:{first}", "text": "\n".join(para), "source": str(path)}
            para, first = [], 0
    if para:
        yield {"id": f"{path}:{first}", "text": "\n".join(para), "source": str(path)}


def _jsonl_documents(path: Path, lines, cfg: ReadConfig, tally: Tally) -> Iterator[dict[str, str]]:
    for lineno, line in lines:
        if line is None or not line.strip():
            continue  # undecodable lines are already tallied; blank lines are not records
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            tally.add("documents_in")
            tally.drop("bad_json", where)
            continue
        text = record.get(cfg.text_field) if isinstance(record, dict) else None
        if not isinstance(text, str):
            tally.add("documents_in")
            tally.drop("no_text_field", where)
            continue
        yield {"id": str(record.get(cfg.id_field, where)), "text": text, "source": str(path)}


def _read_parquet(path: Path, cfg: ReadConfig) -> Iterator[dict[str, str]]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    if cfg.text_field not in names:
        raise InputError(f"{path}: no column {cfg.text_field!r}; columns are {names} (set read.text_field)")
    columns = [cfg.text_field] + ([cfg.id_field] if cfg.id_field in names else [])
    row = 0
    for batch in pf.iter_batches(columns=columns):
        data = batch.to_pydict()
        ids = data.get(cfg.id_field)
        for i, text in enumerate(data[cfg.text_field]):
            yield {"id": str(ids[i]) if ids else f"{path}:{row + i}", "text": text or "", "source": str(path)}
        row += batch.num_rows


def _read_datasets(path: Path, cfg: ReadConfig) -> Iterator[dict[str, str]]:
    import datasets

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        raise InputError(f"{path}: a DatasetDict with splits {list(ds)}; pass one split's folder")
    if cfg.text_field not in ds.column_names:
        raise InputError(f"{path}: no column {cfg.text_field!r}; columns are {ds.column_names}")
    has_id = cfg.id_field in ds.column_names
    for row, record in enumerate(ds.select_columns([cfg.text_field] + ([cfg.id_field] if has_id else []))):
        yield {"id": str(record[cfg.id_field]) if has_id else f"{path}:{row}",
               "text": record[cfg.text_field] or "", "source": str(path)}
