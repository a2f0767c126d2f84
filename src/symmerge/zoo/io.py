"""The zoo file format.

One safetensors file per zoo: ``params`` float32 ``[N, P]`` (flat PyTorch
order), ``labels`` int64 ``[N]``, optional ``image_index`` int64 ``[N]`` (INR
zoos), optional ``split`` int64 ``[N]`` (a published train/val/test assignment:
0 train, 1 val, 2 test) and per-network metric vectors (``psnr``,
``train_accuracy``, ...). The metadata holds ``spec`` (architecture JSON),
``provenance`` (JSON) and ``format``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from symmerge import __version__
from symmerge.errors import SymmergeError
from symmerge.specs.base import WeightSpaceSpec, spec_from_json
from symmerge.utils.io import require_finite, save_safetensors

FORMAT = "symmerge-zoo/1"
RESERVED = ("params", "labels", "image_index", "split")
#: safetensors dtypes a zoo's reserved tensors may have
_DTYPES = {"params": ("F32", "F64", "F16", "BF16"), "labels": ("I64", "I32"),
           "image_index": ("I64", "I32"), "split": ("I64", "I32")}
#: split names; a stored ``split`` tensor holds their positions (0 train, 1 val, 2 test)
SPLITS = ("train", "val", "test")


def check_split_codes(split: Tensor, what: str) -> Tensor:
    """``split`` as int64, or a :class:`SymmergeError` naming ``what`` if a value is not
    0 (train), 1 (val) or 2 (test)."""
    split = torch.as_tensor(split).detach().to(torch.int64).reshape(-1).contiguous()
    bad = torch.unique(split[(split < 0) | (split >= len(SPLITS))])
    if bad.numel():
        raise SymmergeError(f"{what}: split values must be 0 (train), 1 (val) or 2 (test), "
                            f"found {bad[:5].tolist()}")
    return split


def zoo_tensors(
    spec: WeightSpaceSpec,
    params: Tensor,
    labels: Tensor | None = None,
    *,
    image_index: Tensor | None = None,
    split: Tensor | None = None,
    metrics: Mapping[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """The validated tensors of a zoo (what :func:`save_zoo` writes and
    :meth:`Zoo.from_tensors` holds): float32 ``params``, int64 ``labels`` (default -1, no
    class), ``image_index`` and ``split``, float32 metric vectors, on the CPU."""
    params = spec.check_params(torch.as_tensor(params)).detach().to("cpu", torch.float32)
    if params.ndim != 2:
        raise SymmergeError(f"zoo params must be [N, P], got {tuple(params.shape)}")
    n = params.shape[0]
    if n == 0:
        raise SymmergeError("refusing an empty zoo: a zoo needs at least one network")
    tensors: dict[str, Tensor] = {"params": params.contiguous()}
    labels = torch.full((n,), -1, dtype=torch.long) if labels is None else labels
    extras = {"labels": labels, **({"image_index": image_index} if image_index is not None else {})}
    if split is not None:
        extras["split"] = check_split_codes(split, "zoo split")
    for name, t in extras.items():
        t = torch.as_tensor(t).detach().to("cpu", torch.int64).reshape(-1).contiguous()
        if t.shape[0] != n:
            raise SymmergeError(f"{name} has {t.shape[0]} entries, params has {n}")
        tensors[name] = t
    for name, t in (metrics or {}).items():
        if name in RESERVED or not name or name.startswith("__"):
            raise SymmergeError(f"metric name {name!r} is reserved")
        t = torch.as_tensor(t).detach().to("cpu", torch.float32).reshape(-1).contiguous()
        if t.shape[0] != n:
            raise SymmergeError(f"metric {name} has {t.shape[0]} entries, params has {n}")
        tensors[name] = t
    return tensors


def save_zoo(
    path: str | os.PathLike[str],
    spec: WeightSpaceSpec,
    params: Tensor,
    labels: Tensor | None = None,
    *,
    image_index: Tensor | None = None,
    split: Tensor | None = None,
    metrics: Mapping[str, Tensor] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Validate (:func:`zoo_tensors`) and atomically write a zoo file; returns its path.

    ``split`` is a stored train/val/test assignment (0/1/2, see :meth:`Zoo.splits`).
    """
    if Path(path).is_dir():
        raise SymmergeError(f"output path {path} is a directory; give a file name")
    tensors = zoo_tensors(spec, params, labels, image_index=image_index, split=split,
                          metrics=metrics)
    prov = {"symmerge_version": __version__, **dict(provenance or {})}
    meta = {"format": FORMAT, "spec": spec.to_json(), "provenance": json.dumps(prov, default=str)}
    save_safetensors(path, tensors, meta)
    return Path(path)


@dataclass(frozen=True)
class NonFinite:
    """Networks of a zoo whose parameters hold NaN or Inf (:meth:`Zoo.non_finite`)."""

    networks: Tensor  #: their indices, ascending
    nan: int  #: NaN values in all
    inf: int  #: infinite values in all


class Zoo:
    """A zoo: a lazily loaded file (tensors are read, memory-mapped, on first access), or
    networks held in memory (:meth:`from_tensors`, ``path`` None)."""

    _memory: dict[str, Tensor] | None = None

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path: Path | None = Path(path)
        if not self.path.is_file():
            raise SymmergeError(f"zoo file not found: {self.path}")
        try:
            with safe_open(str(self.path), framework="pt") as f:
                meta = f.metadata() or {}
                self._keys = list(f.keys())
                if "params" not in self._keys:
                    raise SymmergeError(f"{self.path} is not a symmerge zoo (no 'params' tensor)")
                shapes = {k: f.get_slice(k).get_shape() for k in self._keys}
                dtypes = {k: f.get_slice(k).get_dtype() for k in self._keys}
                shape = shapes["params"]
        except SafetensorError as exc:
            raise SymmergeError(
                f"cannot read zoo {self.path}: corrupt or not safetensors ({exc})"
            ) from exc
        except (OSError, ValueError) as exc:
            raise SymmergeError(f"cannot read zoo {self.path}: {exc}") from exc
        if meta.get("format") != FORMAT:
            raise SymmergeError(
                f"{self.path} is not a symmerge zoo: format {meta.get('format')!r}, "
                f"expected {FORMAT!r}"
            )
        if "spec" not in meta:
            raise SymmergeError(f"{self.path} has no architecture spec in its metadata")
        try:
            self.spec: WeightSpaceSpec = spec_from_json(meta["spec"])
        except SymmergeError as exc:
            raise SymmergeError(f"{self.path}: {exc}") from exc
        try:
            self.provenance: dict[str, Any] = json.loads(meta.get("provenance", "{}"))
        except json.JSONDecodeError as exc:
            raise SymmergeError(f"{self.path}: invalid provenance JSON: {exc}") from exc
        if not isinstance(self.provenance, dict):
            raise SymmergeError(f"{self.path}: provenance must be a JSON object")
        if len(shape) != 2 or shape[1] != self.spec.num_params:
            raise SymmergeError(
                f"{self.path}: params shape {shape} does not match {self.spec.describe()}"
            )
        self._n = int(shape[0])
        if self._n == 0:
            raise SymmergeError(f"{self.path} holds no networks")
        wrong = [f"{k} is {t}" for k, t in dtypes.items() if k in _DTYPES and t not in _DTYPES[k]]
        if wrong:
            raise SymmergeError(f"{self.path}: {', '.join(wrong)}; expected "
                                + ", ".join(f"{k} {'/'.join(v)}" for k, v in _DTYPES.items()))
        bad = [k for k, s in shapes.items() if k != "params" and s != [self._n]]
        if bad:
            raise SymmergeError(
                f"{self.path}: {', '.join(f'{k} {shapes[k]}' for k in bad)} "
                f"do not match the {self._n} networks"
            )

    @classmethod
    def from_tensors(
        cls,
        params: Tensor,
        spec: WeightSpaceSpec,
        labels: Tensor | None = None,
        image_index: Tensor | None = None,
        metrics: Mapping[str, Tensor] | None = None,
        provenance: Mapping[str, Any] | None = None,
        *,
        split: Tensor | None = None,
    ) -> Zoo:
        """A zoo held in memory, validated as :func:`save_zoo` validates a file (the
        tensors are copied to the CPU; ``path`` is None). :meth:`save` writes it."""
        zoo = cls.__new__(cls)
        zoo.path = None
        zoo.spec = spec
        zoo._memory = zoo_tensors(spec, params, labels, image_index=image_index, split=split,
                                  metrics=metrics)
        zoo._keys = list(zoo._memory)
        zoo._n = zoo._memory["params"].shape[0]
        zoo.provenance = json.loads(json.dumps(
            {"symmerge_version": __version__, **dict(provenance or {})}, default=str))
        return zoo

    @property
    def name(self) -> str:
        """How messages name this zoo: its file, or ``in-memory zoo``."""
        return str(self.path) if self.path is not None else "in-memory zoo"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write this zoo (all its tensors, spec and provenance) to a zoo file."""
        metrics = {m: self.metric(m) for m in self.metric_names}
        return save_zoo(path, self.spec, self.params, self.labels, image_index=self.image_index,
                        split=self.stored_split, metrics=metrics,
                        provenance={k: v for k, v in self.provenance.items()
                                    if k != "symmerge_version"})

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"Zoo({self.name!r}, n={self._n}, spec={self.spec.describe()})"

    def _read(self, name: str, index: Tensor | slice | Sequence[int] | None = None) -> Tensor:
        if self._memory is not None:
            t = self._memory[name]
            if index is None or isinstance(index, slice):
                return t if index is None else t[index]
            index = torch.as_tensor(index, dtype=torch.long)
            if index.numel() and not -self._n <= int(index.min()) <= int(index.max()) < self._n:
                raise SymmergeError(f"index out of range for a zoo of {self._n} networks")
            return t[index]
        try:
            with safe_open(str(self.path), framework="pt") as f:
                if index is None:
                    return f.get_tensor(name)
                if isinstance(index, slice):
                    return f.get_slice(name)[index]
                index = torch.as_tensor(index, dtype=torch.long)
                if index.numel() == 0:
                    return f.get_slice(name)[0:0][index]
                index = torch.where(index < 0, index + self._n, index)
                lo, hi = int(index.min()), int(index.max()) + 1
                if lo < 0 or hi > self._n:
                    raise SymmergeError(f"index out of range for a zoo of {self._n} networks")
                return f.get_slice(name)[lo:hi][index - lo]  # only the covering rows
        except SafetensorError as exc:
            raise SymmergeError(f"cannot read {name!r} from {self.path}: {exc}") from exc
        except OSError as exc:
            raise SymmergeError(f"cannot read {name!r} from {self.path}: {exc}") from exc

    @cached_property
    def params(self) -> Tensor:
        return self._read("params")

    def get_params(self, index: Tensor | slice | Sequence[int]) -> Tensor:
        """Rows of ``params`` without loading the whole tensor (only the rows they span)."""
        return self._read("params", index)

    @cached_property
    def labels(self) -> Tensor:
        return self._read("labels")

    @cached_property
    def image_index(self) -> Tensor | None:
        return self._read("image_index") if "image_index" in self._keys else None

    @cached_property
    def stored_split(self) -> Tensor | None:
        """The stored train/val/test assignment (int64 ``[N]``: 0 train, 1 val, 2 test;
        a published split), or None. Zoos derived from this one pass it on."""
        if "split" not in self._keys:
            return None
        return check_split_codes(self._read("split"), f"zoo {self.name}")

    def check_finite(self) -> Zoo:
        """Raise a :class:`SymmergeError` naming this file if any parameter is NaN or Inf."""
        require_finite(self.params, f"zoo {self.name}: params")
        return self

    def non_finite(self, chunk: int = 4096) -> NonFinite:
        """Which networks hold NaN or Inf parameters, read ``chunk`` rows at a time."""
        rows, nan, inf = [], 0, 0
        for lo in range(0, self._n, chunk):
            block = self.get_params(slice(lo, min(lo + chunk, self._n)))
            if block.is_floating_point():
                nan += int(torch.isnan(block).sum())
                inf += int(torch.isinf(block).sum())
                rows.append(torch.nonzero(~torch.isfinite(block).all(1)).flatten() + lo)
        found = torch.cat(rows) if rows else torch.zeros(0, dtype=torch.long)
        return NonFinite(found, nan, inf)

    @property
    def metric_names(self) -> list[str]:
        return [k for k in self._keys if k not in RESERVED]

    def metric(self, name: str) -> Tensor:
        if name not in self.metric_names:
            raise SymmergeError(f"zoo {self.name} has no metric {name!r}")
        return self._read(name)

    def splits(
        self,
        *,
        seed: int = 0,
        fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
        by_image: bool = True,
    ) -> dict[str, Tensor]:
        """Train/val/test indices (sorted).

        A zoo with a stored ``split`` (the published split of an imported zoo, passed on
        to zoos derived from it) returns exactly that assignment; ``seed``,
        ``fractions`` and ``by_image`` then do not apply. Otherwise the split is seeded:
        with ``by_image``, networks sharing an ``image_index`` land in one split, and a
        zoo with a published test split (the ``is_test`` metric of DWSNets INRs
        imported without a split file) keeps it: those networks are the test split,
        the others are split into train and val in the ratio
        ``fractions[0] : fractions[1]``. Without ``by_image``: a plain seeded split of
        the rows.
        """
        stored = self.stored_split
        if stored is not None:
            return {name: torch.nonzero(stored == i).flatten() for i, name in enumerate(SPLITS)}
        if not by_image:
            return split_indices(self._n, seed=seed, fractions=fractions)
        groups = self.image_index
        published = self.split_metrics().get("is_test")
        if published is None:
            return split_indices(self._n, seed=seed, fractions=fractions, groups=groups)
        is_test = published > 0.5
        rest = torch.nonzero(~is_test).flatten()
        sub = split_indices(rest.numel(), seed=seed, fractions=(fractions[0], fractions[1], 0.0),
                            groups=None if groups is None else groups[rest])
        return {"train": rest[sub["train"]], "val": rest[sub["val"]],
                "test": torch.nonzero(is_test).flatten()}

    def split(
        self,
        name: str,
        *,
        seed: int = 0,
        fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
        by_image: bool = True,
    ) -> Tensor:
        """Indices of one split of :meth:`splits`."""
        if name not in SPLITS:
            raise SymmergeError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        return self.splits(seed=seed, fractions=fractions, by_image=by_image)[name]

    def split_metrics(self) -> dict[str, Tensor]:
        """The metrics that define :meth:`splits` (``is_test``), for zoos derived from this
        one that drop the others (they pass :attr:`stored_split` on too)."""
        return {m: self.metric(m) for m in ("is_test",) if m in self.metric_names}


def load_zoo(path: str | os.PathLike[str]) -> Zoo:
    """Open a zoo file (validates its header; tensors are read lazily)."""
    return Zoo(path)


def as_zoo(zoo: Zoo | str | os.PathLike[str]) -> Zoo:
    """``zoo`` if it is a :class:`Zoo` (in memory or a file), else the zoo file at that
    path (:func:`load_zoo`): for functions that take either."""
    return zoo if isinstance(zoo, Zoo) else load_zoo(zoo)


def split_indices(
    n: int,
    *,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    groups: Tensor | None = None,
) -> dict[str, Tensor]:
    """Deterministic seeded split of ``range(n)`` into train/val/test index tensors (sorted).

    With ``groups [n]`` the group ids are split by ``fractions`` and every network goes
    where its group goes (networks fitted to one image never straddle two splits). When
    every network has its own group, in increasing order, the split is the ungrouped one.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise SymmergeError(f"invalid split fractions {fractions}")
    if groups is not None:
        if groups.shape != (n,):
            raise SymmergeError(f"split groups must be [{n}], got {tuple(groups.shape)}")
        ids, inverse = torch.unique(groups, return_inverse=True)
        parts = split_indices(ids.numel(), seed=seed, fractions=fractions)
        return {k: torch.nonzero(torch.isin(inverse, p)).flatten() for k, p in parts.items()}
    total = sum(fractions)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = min(int(round(n * fractions[1] / total)), n)
    n_test = min(int(round(n * fractions[2] / total)), n - n_val)
    n_train = n - n_val - n_test
    parts = (perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :])
    return {name: torch.sort(p).values for name, p in zip(SPLITS, parts, strict=True)}
