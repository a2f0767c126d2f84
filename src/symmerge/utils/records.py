"""Dataclass records: a typed result saved whole and read back by its fields' type hints.

:func:`save_record` writes a dataclass (frozen or not, nested dataclasses, tuples, lists,
dicts, sets, paths, enums, numbers, strings, NumPy arrays and scalars and torch tensors
in its fields) into
one safetensors file, written atomically: the arrays as tensors and everything else as
JSON in the file's metadata. :func:`load_record` rebuilds it from the class's type hints,
field by field: no pickle, and nothing the file names is imported or called. The class
to build is the caller's, or one of its subclasses the file names (a field holding a
subclass of its hinted class is saved with the subclass's name, looked up the same way).
A field the file lacks takes its default (a field added after the record was written); a
field the class no longer has is ignored.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from symmerge.errors import SymmergeError
from symmerge.utils.io import error_summary, save_safetensors

T = TypeVar("T")

#: the format of a record file (in its metadata)
FORMAT = "symmerge-record/1"
_ARRAY, _TENSOR, _TYPE, _FLOAT = "__array__", "__tensor__", "__type__", "__float__"


class RecordError(SymmergeError):
    """A record that cannot be read back into the class asked for."""


def save_record(obj: Any, path: str | os.PathLike[str], *, exclude: tuple[str, ...] = ()
                ) -> Path:
    """Write the dataclass ``obj`` (less its top-level fields named in ``exclude``) to
    the record file ``path`` atomically; returns ``path``."""
    if not _is_dataclass_instance(obj):
        raise TypeError(f"save_record needs a dataclass instance, got {type(obj).__name__}")
    arrays: dict[str, torch.Tensor] = {}
    tree = _fields_tree(obj, arrays, "", exclude)
    meta = {"format": FORMAT, "type": type(obj).__qualname__,
            "tree": json.dumps(tree, allow_nan=False)}  # mapping order kept
    return save_safetensors(path, arrays, meta)


def load_record(cls: type[T], path: str | os.PathLike[str]) -> T:
    """The instance of ``cls`` (or of the subclass the record names) in the record file
    ``path``; a missing, damaged or mismatched record is a :class:`RecordError`."""
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.is_file():
        raise RecordError(f"record not found: {p}")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as exc:
        raise RecordError(f"cannot read record {p}: {error_summary(exc)}") from exc
    if meta.get("format") != FORMAT:
        raise RecordError(f"{p} is not a symmerge record (format {meta.get('format')!r}, "
                          f"expected {FORMAT!r})")
    try:
        target = _subclass(cls, meta.get("type", ""))
        tree = json.loads(meta["tree"])
        return typing.cast(T, _dataclass(target, tree, arrays, ""))
    except (KeyError, TypeError, ValueError, NameError) as exc:
        raise RecordError(f"cannot read record {p} as {cls.__name__}: "
                          f"{error_summary(exc)}") from exc


# ------------------------------------------------------------------ writing
def _is_dataclass_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _fields_tree(obj: Any, arrays: dict[str, torch.Tensor], path: str,
                 exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    return {f.name: _tree(getattr(obj, f.name), arrays, f"{path}{f.name}")
            for f in dataclasses.fields(obj) if f.init and f.name not in exclude}


def _tree(value: Any, arrays: dict[str, torch.Tensor], path: str) -> Any:
    """``value`` as JSON data; arrays and tensors go into ``arrays`` under ``path``."""
    if isinstance(value, enum.Enum):
        return _tree(value.value, arrays, path)
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else {_FLOAT: repr(v)}  # nan, inf, -inf
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"{path}: arrays of Python objects cannot be saved")
        key = _free_key(arrays, path)
        arrays[key] = torch.from_numpy(np.array(value, copy=True, order="C"))
        return {_ARRAY: key}
    if isinstance(value, torch.Tensor):
        key = _free_key(arrays, path)
        arrays[key] = value.detach().cpu().contiguous().clone()
        return {_TENSOR: key}
    if isinstance(value, Path):
        return str(value)
    if _is_dataclass_instance(value):
        out = _fields_tree(value, arrays, f"{path}.")
        out[_TYPE] = type(value).__qualname__
        return out
    if isinstance(value, Mapping):
        keys = [str(k) for k in value]
        if len(set(keys)) != len(keys):
            raise TypeError(f"{path}: keys that are equal as text cannot be saved")
        return {str(k): _tree(v, arrays, f"{path}/{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tree(v, arrays, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        items = [_tree(v, arrays, f"{path}{{{i}}}") for i, v in enumerate(value)]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    raise TypeError(f"{path}: values of type {type(value).__name__} cannot be saved")


def _free_key(arrays: Mapping[str, torch.Tensor], path: str) -> str:
    """``path``, or ``path#N`` if a mapping key with ``/`` in it made it taken."""
    key, n = path, 1
    while key in arrays:
        key, n = f"{path}#{n}", n + 1
    return key


# ------------------------------------------------------------------ reading
def _subclass(base: type, name: str) -> type:
    """``base`` or its (imported) subclass whose qualified name is ``name``."""
    todo, seen = [base], set()
    while todo:
        c = todo.pop()
        if c.__qualname__ == name:
            return c
        seen.add(c)
        todo += [s for s in c.__subclasses__() if s not in seen]
    raise TypeError(f"the record holds a {name or '(nameless)'}, which is not a "
                    f"{base.__name__}")


def _dataclass(cls: type, tree: Any, arrays: Mapping[str, torch.Tensor], path: str) -> Any:
    if not isinstance(tree, dict):
        raise TypeError(f"{path or 'the record'}: expected the fields of {cls.__name__}")
    if _TYPE in tree:
        cls = _subclass(cls, tree[_TYPE])
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name in tree:
            values[f.name] = _value(tree[f.name], hints[f.name], arrays, f"{path}{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise TypeError(f"{path}{f.name}: missing (the record was written by a version "
                            f"of {cls.__name__} without it)")
    return cls(**values)


def _value(tree: Any, hint: Any, arrays: Mapping[str, torch.Tensor], path: str) -> Any:
    """``tree`` read as a value of type ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return _untyped(tree, arrays)
    if origin is typing.Union or origin is types.UnionType:
        if tree is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _value(tree, arg, arrays, path)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise TypeError("; ".join(errors) or f"{path}: no type fits")
    if origin is typing.Literal:
        if tree not in args:
            raise ValueError(f"{path}: {tree!r} is not one of {args}")
        return tree
    if origin is typing.ClassVar:
        return _value(tree, args[0], arrays, path)
    if hint is type(None):
        _expect(tree is None, path, "null")
        return None
    if hint is bool:
        _expect(isinstance(tree, bool), path, "a boolean")
        return tree
    if hint is int:
        _expect(isinstance(tree, int) and not isinstance(tree, bool), path, "an integer")
        return tree
    if hint is float:
        if isinstance(tree, dict) and set(tree) == {_FLOAT}:
            return float(tree[_FLOAT])
        _expect(isinstance(tree, (int, float)) and not isinstance(tree, bool), path, "a number")
        return float(tree)
    if hint is str:
        _expect(isinstance(tree, str), path, "text")
        return tree
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(_untyped(tree, arrays))
    if isinstance(hint, type) and issubclass(hint, np.generic):
        return hint(_untyped(tree, arrays))
    if isinstance(hint, type) and issubclass(hint, os.PathLike):
        _expect(isinstance(tree, str), path, "a path")
        return Path(tree)
    if hint is np.ndarray:
        return _stored(tree, _ARRAY, arrays, path).numpy()
    if hint is torch.Tensor:
        return _stored(tree, _TENSOR, arrays, path)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass(hint, tree, arrays, f"{path}.")
    container = origin or hint
    if container in (tuple, list, set, frozenset):
        _expect(isinstance(tree, list), path, "a list")
        if container is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            _expect(len(args) == len(tree), path, f"{len(args)} items")
            return tuple(_value(v, a, arrays, f"{path}[{i}]")
                         for i, (v, a) in enumerate(zip(tree, args, strict=True)))
        item = args[0] if args else Any
        return container(_value(v, item, arrays, f"{path}[{i}]") for i, v in enumerate(tree))
    if container in (dict, Mapping) or container is typing.Mapping:
        _expect(isinstance(tree, dict), path, "a mapping")
        key, val = args if args else (Any, Any)
        return {_key(k, key, path): _value(v, val, arrays, f"{path}/{k}")
                for k, v in tree.items()}
    raise TypeError(f"{path}: cannot read a value of type {hint!r}")


def _untyped(tree: Any, arrays: Mapping[str, torch.Tensor]) -> Any:
    """``tree`` without a type hint: JSON data, with its numbers that JSON cannot hold
    and its arrays put back (as written; tuples come back as lists)."""
    if isinstance(tree, list):
        return [_untyped(v, arrays) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if set(tree) == {_FLOAT}:
        return float(tree[_FLOAT])
    if set(tree) == {_ARRAY}:
        return _stored(tree, _ARRAY, arrays, "").numpy()
    if set(tree) == {_TENSOR}:
        return _stored(tree, _TENSOR, arrays, "")
    return {k: _untyped(v, arrays) for k, v in tree.items()}


def _expect(ok: bool, path: str, what: str) -> None:
    if not ok:
        raise TypeError(f"{path}: expected {what}")


def _key(text: str, hint: Any, path: str) -> Any:
    if hint in (str, Any):
        return text
    if hint is int:
        return int(text)
    if hint is float:
        return float(text)
    raise TypeError(f"{path}: cannot read mapping keys of type {hint!r}")


def _stored(tree: Any, marker: str, arrays: Mapping[str, torch.Tensor], path: str
            ) -> torch.Tensor:
    _expect(isinstance(tree, dict) and set(tree) == {marker}, path, "a stored array")
    if tree[marker] not in arrays:
        raise TypeError(f"{path}: the record's array {tree[marker]!r} is missing")
    return arrays[tree[marker]]
