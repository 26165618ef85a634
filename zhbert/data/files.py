"""Small file helpers every artefact writer shares: atomic JSON and content hashes."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def write_json(path: Path, obj: Any) -> None:
    """Write-then-rename: a reader (or a crash) never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tokens_sha256(tokens: Iterable[str]) -> str:
    """Hash of an ordered token list (line i = id i): what a table's rows mean, independent of file layout."""
    return hashlib.sha256("\n".join(tokens).encode()).hexdigest()
