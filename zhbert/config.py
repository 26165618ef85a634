"""Typed configs: dataclasses hold every default; TOML files in configs/ are short deltas over them.

A key the dataclass does not know is an error at load time (with the known keys listed), so a typo
fails before hours of work instead of silently doing nothing. Command-line overrides use the same
dotted names as the TOML sections: ``--normalize.t2s=true``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not fit its dataclass."""


def shipped(name: Literal["configs", "fonts"]) -> Path:
    """A folder shipped with zhbert: inside the installed package (the wheel maps the repository's configs/ and
    fonts/ to zhbert/configs and zhbert/fonts), or at the root of a source checkout (editable install, PYTHONPATH)."""
    package = Path(__file__).resolve().parent
    for folder in (package / name, package.parent / name):
        if folder.is_dir() and (folder.parent == package or (package.parent / "pyproject.toml").exists()):
            return folder
    raise FileNotFoundError(f"zhbert's {name}/ folder is missing: neither {package / name} (an installed wheel) "
                            f"nor {package.parent / name} (a source checkout) exists; reinstall zhbert")


def config_path(path: str | Path) -> Path:
    """A config file as named by a user or another config: as given when it exists, else a relative
    ``configs/…`` path is read from the configs shipped with zhbert, so ``configs/pretrain/tiny.toml`` works from
    any folder and from an installed wheel."""
    path = Path(path)
    if path.exists() or path.is_absolute() or path.parts[:1] != ("configs",):
        return path
    inside = shipped("configs").joinpath(*path.parts[1:])
    return inside if inside.exists() else path  # neither: the error names the path as the user wrote it


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from a (possibly partial) dict, checking keys and types."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(where + k for k in unknown)}; known: {sorted(known)}")
    return cls(**{k: _coerce(hints[k], v, where + k) for k, v in data.items()})


def _coerce(hint: Any, value: Any, name: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a table, got {value!r}")
        return from_dict(hint, value, name + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, name)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError("; ".join(errors))
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{name} must be one of {list(args)}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list, got {value!r}")
        item = args[0] if args else Any
        items = [_coerce(item, v, f"{name}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a table, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (hint is int and isinstance(value, bool)) or not isinstance(value, hint):
        raise ConfigError(f"{name} must be {hint.__name__}, got {value!r}")
    return value


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` → ``{"a": {"b": 1}, "c": "x"}``; values use TOML syntax, else plain strings."""
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.removeprefix("--").partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = tree
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def merge(base: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in delta.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_toml(path: str | Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A TOML file as a dict, with ``extends`` resolved: a table (the top level or any section) that has
    ``extends = "other.toml"`` (a path relative to this file, or a list of them) is that file's
    contents with this table's keys merged over them. So ``configs/pretrain/tiny-fusion.toml`` can say
    ``extends = "tiny.toml"`` and, under ``[model]``, ``extends = "../model/tiny-fusion.toml"``."""
    path = config_path(path).resolve()
    if path in seen:
        raise ConfigError(f"{path}: extends itself (through {' → '.join(p.name for p in seen)})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None
    return _resolve_extends(data, path, (*seen, path))


def _resolve_extends(table: dict[str, Any], path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    table = {k: _resolve_extends(v, path, seen) if isinstance(v, dict) else v for k, v in table.items()}
    bases = table.pop("extends", [])
    base: dict[str, Any] = {}
    for name in [bases] if isinstance(bases, str) else bases:
        base = merge(base, read_toml(path.parent / name, seen))
    return merge(base, table)


def load(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Defaults of ``cls`` ← the TOML file at ``path`` (with its ``extends``) ← ``overrides``."""
    data = read_toml(path) if path is not None else {}
    data = merge(data, parse_overrides(overrides or []))
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path or 'config'}: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_TOML_MUST_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f]')  # TOML basic strings: quote, backslash, controls
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_value(value: Any) -> str:
    """``value`` as a TOML literal that `tomllib` reads back exactly: a basic string with the escapes TOML needs,
    a number, a bool, a list or an inline table. Config text built from paths or user input goes through here:
    an f-string breaks on a ``"`` or ``\\``, ``repr`` writes Python escapes, and ``json.dumps`` writes
    non-BMP characters as surrogate pairs, which TOML refuses."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # TOML spells floats as Python does, inf and nan included
    if isinstance(value, (str, Path)):
        text = str(value)
        if _SURROGATE.search(text):
            raise ValueError(f"{text!r} holds a lone surrogate, which no TOML string can hold")
        return '"' + _TOML_MUST_ESCAPE.sub(lambda m: _TOML_ESCAPES.get(m[0], f"\\u{ord(m[0]):04X}"), text) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML literal for {value!r} ({type(value).__name__})")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else toml_value(key)


def override(key: str, value: Any) -> str:
    """A command-line override ``key=<value as TOML>``, as `parse_overrides` reads it."""
    return f"{key}={toml_value(value)}"


def dump_toml(table: dict[str, Any]) -> str:
    """A TOML document for ``table``: its plain keys first, then each sub-table as a ``[section]``."""
    lines: list[str] = []

    def emit(node: dict[str, Any], prefix: str) -> None:
        lines.extend(f"{_toml_key(k)} = {toml_value(v)}" for k, v in node.items() if not isinstance(v, dict))
        for k, v in node.items():
            if isinstance(v, dict):
                lines.append(f"\n[{prefix}{_toml_key(k)}]")
                emit(v, f"{prefix}{_toml_key(k)}.")

    emit(table, "")
    return "\n".join(lines) + "\n"


def config_hash(*parts: Any) -> str:
    """A short stable hash of configs (dataclasses or JSON-able values): keys artefacts on disk."""
    blob = json.dumps([to_dict(p) if dataclasses.is_dataclass(p) else p for p in parts],
                      sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
