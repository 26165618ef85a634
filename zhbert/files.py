"""Small file helpers every artefact writer shares: atomic writes, token files and content hashes."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for any writer (text, numpy, safetensors, Arrow, a copy); when the block
    ends without an error the file is fsynced and renamed over ``path``, so a reader or a crash sees the old file
    or the new one, never half of one. On an error the temporary file is removed and ``path`` is left as it was.
    Where a file marks other work as done (a stats file, a manifest), write the work first and the marker last."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=1) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_tokens(path: str | Path, missing: str) -> list[str]:
    """A token file (vocab.txt, word_vocab.txt, pinyin_vocab.txt): line i = id i. Split on '\\n' only: a vocab may
    hold characters that ``splitlines`` treats as line breaks (U+0085, U+2028, U+001C…). ``missing``: what to do
    when the file is absent, for the error."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; {missing}")
    return path.read_text(encoding="utf-8").removesuffix("\n").split("\n")


def write_tokens(path: str | Path, tokens: Iterable[str]) -> None:
    write_text(path, "\n".join(tokens) + "\n")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_files(paths: Iterable[str | Path]) -> list[str]:
    """Hashes of files a key depends on (user dictionaries, exclusion lists): edited in place, a file keeps its
    path, so a key must hold its content."""
    return [sha256_file(Path(p)) for p in paths]


def folder_sha256(folder: Path) -> str:
    """A folder's identity: the relative paths and hashes of its files, in path order."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + bytes.fromhex(sha256_file(p)))
    return h.hexdigest()


def tokens_sha256(tokens: Iterable[str]) -> str:
    """Hash of an ordered token list (line i = id i): what a table's rows mean, independent of file layout."""
    return hashlib.sha256("\n".join(tokens).encode()).hexdigest()
