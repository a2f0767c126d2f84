"""Dataclass records: saved whole, read back by type hints, no pickle."""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pytest
import torch
from safetensors import safe_open

from symmerge.errors import SymmergeError
from symmerge.utils.records import FORMAT, RecordError, load_record, save_record


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Leaf:
    name: str
    value: float
    note: str | None = None


@dataclass(frozen=True)
class SubLeaf(Leaf):
    extra: int = 0


@dataclass(kw_only=True)
class Record:
    kind: ClassVar[str] = "record"

    count: int
    ratio: float
    flag: bool
    mode: Literal["a", "b"]
    where: Path
    pair: tuple[float, float, float]
    many: tuple[int, ...]
    tags: frozenset[str]
    by_id: dict[int, Leaf]
    nested: dict[str, dict[str, np.ndarray]]
    arrays: tuple[np.ndarray, ...]
    tensor: torch.Tensor
    leaf: Leaf
    maybe: Leaf | None
    optional_number: float | None
    loose: dict[str, Any]
    colour: Colour = Colour.RED
    scalar: np.float32 = np.float32(0.5)
    directory: Path | None = field(default=None, compare=False)


@dataclass(kw_only=True)
class Child(Record):
    kind: ClassVar[str] = "child"
    added: int = 7


def _record(cls=Record, **extra) -> Record:
    gen = np.random.default_rng(0)
    return cls(
        count=3, ratio=math.nan, flag=True, mode="b", where=Path("a/b.txt"),
        pair=(0.1, math.inf, -math.inf), many=(1, 2, 3), tags=frozenset({"x", "y"}),
        by_id={4: Leaf("four", 4.5), 2: SubLeaf("two", 0.25, "n", extra=3)},
        nested={"ae/x": {"mse": gen.normal(size=(3, 5))}, "ae": {"x/mse": np.arange(3)}},
        arrays=(np.zeros((0, 2), np.float32), np.array([True, False]),
                gen.integers(0, 9, (2, 2)).astype(np.int64), np.array([1, 2], np.uint8)[::-1]),
        tensor=torch.arange(6.0).reshape(2, 3).t(), leaf=Leaf("leaf", -1.0),
        maybe=None, optional_number=np.float64(2.5), loose={"a": [1, 2], "b": math.nan},
        colour=Colour.BLUE, scalar=np.float32(1 / 3),
        directory=Path("/nowhere"), **extra)


def _same(a: Any, b: Any) -> None:
    """Deep equality where NaN equals NaN and arrays compare element- and dtype-wise."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b) and a.dtype == b.dtype
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif hasattr(a, "__dataclass_fields__"):
        assert type(a) is type(b)
        for name in a.__dataclass_fields__:
            _same(getattr(a, name), getattr(b, name))
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b)
    else:
        assert a == b and type(a) is type(b) or (isinstance(a, float) and a == b), (a, b)


def test_round_trip_keeps_every_value_and_type(tmp_path):
    r = _record()
    path = save_record(r, tmp_path / "r.safetensors", exclude=("directory",))
    back = load_record(Record, path)
    assert back.directory is None  # excluded: its default
    back.directory = r.directory
    _same(r, back)
    assert isinstance(back.by_id[2], SubLeaf) and back.by_id[2].extra == 3
    assert isinstance(back.optional_number, float) and isinstance(back.tags, frozenset)


def test_the_file_is_safetensors_with_json_metadata(tmp_path):
    path = save_record(_record(), tmp_path / "r.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
    assert meta["format"] == FORMAT and meta["type"] == "Record"
    tree = json.loads(meta["tree"])  # strict JSON: no NaN literals
    assert tree["ratio"] == {"__float__": "nan"} and tree["count"] == 3
    assert "tensor" in keys and len(keys) == 7  # every array once, distinct keys


def test_a_subclass_is_read_through_its_base_class(tmp_path):
    path = save_record(_record(Child, added=9), tmp_path / "r.safetensors")
    back = load_record(Record, path)
    assert type(back) is Child and back.added == 9
    with pytest.raises(RecordError, match="holds a Record, which is not a Child"):
        load_record(Child, save_record(_record(), tmp_path / "base.safetensors"))


def test_a_new_field_with_a_default_is_filled_a_required_one_is_an_error(tmp_path):
    @dataclass(frozen=True)
    class Old:
        a: int

    @dataclass(frozen=True)
    class New:
        a: int
        b: float = 0.5

    @dataclass(frozen=True)
    class Strict:
        a: int
        b: float

    Old.__qualname__ = New.__qualname__ = Strict.__qualname__ = "Thing"
    path = save_record(Old(1), tmp_path / "r.safetensors")
    assert load_record(New, path) == New(1, 0.5)
    with pytest.raises(RecordError, match="b: missing"):
        load_record(Strict, path)
    # a field the class no longer has is ignored
    assert load_record(Old, save_record(New(2, 1.0), tmp_path / "n.safetensors")) == Old(2)


def test_wrong_types_and_damaged_files_are_clear_errors(tmp_path):
    @dataclass
    class A:
        x: int

    @dataclass
    class B:
        x: str

    A.__qualname__ = B.__qualname__ = "Same"
    path = save_record(A(3), tmp_path / "a.safetensors")
    with pytest.raises(RecordError, match="x: expected text"):
        load_record(B, path)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a record")
    with pytest.raises(SymmergeError, match="cannot read record"):
        load_record(A, bad)
    with pytest.raises(RecordError, match="record not found"):
        load_record(A, tmp_path / "missing.safetensors")
    from symmerge.utils.io import save_safetensors

    other = save_safetensors(tmp_path / "o.safetensors", {"x": torch.zeros(1)})
    with pytest.raises(RecordError, match="not a symmerge record"):
        load_record(A, other)
    with pytest.raises(TypeError, match="cannot be saved"):
        save_record(A(object()), tmp_path / "obj.safetensors")  # type: ignore[arg-type]


def test_saving_is_atomic_and_leaves_nothing_else(tmp_path):
    save_record(_record(), tmp_path / "r.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["r.safetensors"]
