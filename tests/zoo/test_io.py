"""The zoo file: round trips, lazy reads, splits, atomic writes and corrupt input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from symmerge import CNNSpec, SirenSpec, SymmergeError
from symmerge.zoo.io import FORMAT, Zoo, load_zoo, save_zoo, split_indices

SPECS = [SirenSpec(), CNNSpec((1, 4, 4, 3))]


def _write(path: Path, spec, n: int = 6, **kwargs) -> torch.Tensor:
    params = torch.randn(n, spec.num_params, generator=torch.Generator().manual_seed(0))
    save_zoo(path, spec, params, **kwargs)
    return params


def _raw(path: Path, tensors: dict, **meta: str) -> None:
    """A safetensors file written without save_zoo's checks."""
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --------------------------------------------------------------- round trip
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.family)
def test_round_trip(tmp_path: Path, spec, dtype: torch.dtype) -> None:
    n = 7
    params = torch.randn(n, spec.num_params, dtype=dtype)
    labels = torch.arange(n) % 3
    image_index = torch.arange(n) * 10
    metrics = {"psnr": torch.linspace(10, 30, n, dtype=torch.float64), "is_test": torch.ones(n)}
    prov = {"importer": "test", "nested": {"a": [1, 2]}, "path": tmp_path}
    out = save_zoo(tmp_path / "z.safetensors", spec, params, labels, image_index=image_index,
                   metrics=metrics, provenance=prov)
    assert out == tmp_path / "z.safetensors"
    z = load_zoo(out)
    assert isinstance(z, Zoo) and len(z) == n and z.spec == spec
    assert z.params.dtype == torch.float32 and torch.equal(z.params, params.float())
    assert z.labels.dtype == torch.int64 and torch.equal(z.labels, labels)
    assert torch.equal(z.image_index, image_index)
    assert z.metric_names == ["is_test", "psnr"]
    assert torch.equal(z.metric("psnr"), metrics["psnr"].float())
    assert z.provenance["importer"] == "test" and z.provenance["nested"] == {"a": [1, 2]}
    assert z.provenance["path"] == str(tmp_path) and "symmerge_version" in z.provenance
    assert "n=7" in repr(z)


def test_defaults_and_missing_metric(tmp_path: Path) -> None:
    spec = SirenSpec()
    _write(tmp_path / "z.safetensors", spec, n=3)
    z = Zoo(tmp_path / "z.safetensors")
    assert z.labels.tolist() == [-1, -1, -1]
    assert z.image_index is None and z.metric_names == []
    with pytest.raises(SymmergeError, match="no metric 'psnr'"):
        z.metric("psnr")


# ---------------------------------------------------------------- lazy reads
def test_lazy_row_reads(tmp_path: Path) -> None:
    spec = SirenSpec()
    params = _write(tmp_path / "z.safetensors", spec, n=10)
    z = load_zoo(tmp_path / "z.safetensors")
    assert torch.equal(z.get_params(slice(2, 5)), params[2:5])
    idx = torch.tensor([7, 1, 1, 4])
    assert torch.equal(z.get_params(idx), params[idx])
    assert torch.equal(z.get_params([9, -1, 0]), params[[9, 9, 0]])
    assert z.get_params([]).shape == (0, spec.num_params)
    pairs = torch.tensor([[3, 8], [0, 3]])
    assert torch.equal(z.get_params(pairs), params[pairs])
    assert "params" not in z.__dict__  # the cached full tensor was never loaded
    with pytest.raises(SymmergeError, match="out of range"):
        z.get_params([3, 10])


# -------------------------------------------------------------------- splits
def test_splits_are_deterministic_disjoint_and_covering() -> None:
    a, b = split_indices(100, seed=3), split_indices(100, seed=3)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["train"], split_indices(100, seed=4)["train"])
    assert [len(a[k]) for k in ("train", "val", "test")] == [80, 10, 10]
    joined = torch.cat([a["train"], a["val"], a["test"]])
    assert sorted(joined.tolist()) == list(range(100))
    assert all(torch.equal(v, torch.sort(v).values) for v in a.values())


@pytest.mark.parametrize("n", [1, 2, 3, 7])
@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.1), (0.0, 1.0, 1.0), (1.0, 0.0, 0.0)])
def test_split_sizes_always_cover(n: int, fractions) -> None:
    s = split_indices(n, seed=0, fractions=fractions)
    assert sorted(torch.cat(list(s.values())).tolist()) == list(range(n))


def test_zoo_split(tmp_path: Path) -> None:
    _write(tmp_path / "z.safetensors", SirenSpec(), n=20)
    z = load_zoo(tmp_path / "z.safetensors")
    assert torch.equal(z.split("val", seed=1), split_indices(20, seed=1)["val"])
    with pytest.raises(SymmergeError, match="unknown split 'valid'"):
        z.split("valid")
    with pytest.raises(SymmergeError, match="invalid split fractions"):
        split_indices(5, fractions=(0.5, -0.1, 0.6))


# ------------------------------------------------------------- atomic writes
def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_save(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        _write(tmp_path / "z.safetensors", SirenSpec())
    assert _files(tmp_path) == []


def test_failed_overwrite_keeps_old_zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = SirenSpec()
    params = _write(tmp_path / "z.safetensors", spec, n=4)

    def interrupted(tensors, filename, metadata=None):
        raise KeyboardInterrupt

    monkeypatch.setattr("safetensors.torch.save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _write(tmp_path / "z.safetensors", spec, n=9)
    assert _files(tmp_path) == ["z.safetensors"]
    assert torch.equal(load_zoo(tmp_path / "z.safetensors").params, params)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"params": torch.full((2, 1185), float("nan"))}, "NaN"),
        ({"params": torch.zeros(2, 1184)}, "has 1185 parameters"),
        ({"params": torch.zeros(1185)}, r"must be \[N, P\]"),
        ({"params": torch.zeros(0, 1185)}, "empty zoo"),
        ({"labels": torch.zeros(3)}, "labels has 3 entries"),
        ({"image_index": torch.zeros(1)}, "image_index has 1 entries"),
        ({"metrics": {"psnr": torch.zeros(5)}}, "metric psnr has 5 entries"),
        ({"metrics": {"labels": torch.zeros(2)}}, "reserved"),
        ({"metrics": {"__metadata__": torch.zeros(2)}}, "reserved"),
    ],
    ids=["nan", "wrong-p", "1d", "empty", "labels", "image-index", "metric", "reserved",
         "dunder"],
)
def test_invalid_zoo_is_not_written(tmp_path: Path, kwargs: dict, pattern: str) -> None:
    args = {"params": torch.zeros(2, 1185), **kwargs}
    params = args.pop("params")
    with pytest.raises(SymmergeError, match=pattern):
        save_zoo(tmp_path / "z.safetensors", SirenSpec(), params, **args)
    assert _files(tmp_path) == []


def test_output_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(SymmergeError, match="is a directory"):
        save_zoo(tmp_path, SirenSpec(), torch.zeros(1, 1185))


# ------------------------------------------------------------ corrupt input
def test_missing_zoo(tmp_path: Path) -> None:
    with pytest.raises(SymmergeError, match="zoo file not found"):
        load_zoo(tmp_path / "absent.safetensors")


@pytest.mark.parametrize("cut", [0, 1, 20, -1, -100])
def test_truncated_or_garbage_file(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "z.safetensors"
    _write(path, SirenSpec(), n=3)
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(SymmergeError, match="corrupt or not safetensors"):
        load_zoo(path)


def test_text_file_is_not_a_zoo(tmp_path: Path) -> None:
    path = tmp_path / "z.safetensors"
    path.write_text("params,labels\n1,2\n")
    with pytest.raises(SymmergeError, match="corrupt or not safetensors"):
        load_zoo(path)


def test_wrong_param_count_for_spec(tmp_path: Path) -> None:
    path = tmp_path / "z.safetensors"
    _raw(path, {"params": torch.zeros(3, 1000), "labels": torch.zeros(3, dtype=torch.long)},
         format=FORMAT, spec=SirenSpec().to_json())
    with pytest.raises(SymmergeError, match=r"params shape \[3, 1000\] does not match siren"):
        load_zoo(path)


def _meta(spec=None, **extra: str) -> dict:
    return {"format": FORMAT, "spec": (spec or SirenSpec()).to_json(), **extra}


@pytest.mark.parametrize(
    ("tensors", "meta", "pattern"),
    [
        ({"labels": torch.zeros(2)}, _meta(), "no 'params' tensor"),
        ({"params": torch.zeros(2, 1185)}, {"spec": SirenSpec().to_json()}, "not a symmerge zoo"),
        ({"params": torch.zeros(2, 1185)}, {"format": FORMAT}, "no architecture spec"),
        (
            {"params": torch.zeros(2, 1185)},
            {"format": FORMAT, "spec": json.dumps({"family": "transformer", "layout": [2, 1]})},
            "unknown architecture family 'transformer'",
        ),
        ({"params": torch.zeros(2, 1185)}, {"format": FORMAT, "spec": "{"}, "invalid .*spec JSON"),
        ({"params": torch.zeros(2, 1185)}, _meta(provenance="{oops"), "invalid provenance JSON"),
        (
            {"params": torch.zeros(2, 1185), "labels": torch.zeros(3, dtype=torch.long)},
            _meta(),
            r"labels \[3\] do not match the 2 networks",
        ),
        (
            {"params": torch.zeros(2, 1185), "psnr": torch.zeros(2, 2)},
            _meta(),
            r"psnr \[2, 2\] do not match",
        ),
    ],
    ids=["no-params", "no-format", "no-spec", "unknown-family", "bad-spec-json",
         "bad-provenance", "labels-length", "metric-shape"],
)
def test_invalid_zoo_files(tmp_path: Path, tensors: dict, meta: dict, pattern: str) -> None:
    path = tmp_path / "z.safetensors"
    _raw(path, tensors, **meta)
    with pytest.raises(SymmergeError, match=pattern):
        load_zoo(path)


def test_grouped_split_keeps_groups_together() -> None:
    groups = torch.arange(60) // 3  # three networks per image
    s = split_indices(60, seed=2, groups=groups)
    owner = {}
    for name, idx in s.items():
        for g in groups[idx].tolist():
            assert owner.setdefault(g, name) == name
    assert [len(s[k]) for k in ("train", "val", "test")] == [48, 6, 6]
    assert sorted(torch.cat(list(s.values())).tolist()) == list(range(60))
    # one network per group (ids increasing): the ungrouped split, unchanged
    plain = split_indices(50, seed=2)
    single = split_indices(50, seed=2, groups=torch.arange(50) * 5)
    assert all(torch.equal(plain[k], single[k]) for k in plain)
    with pytest.raises(SymmergeError, match="split groups"):
        split_indices(5, groups=torch.arange(4))


def test_zoo_splits_follow_images_and_a_published_test_split(tmp_path: Path) -> None:
    spec = SirenSpec((2, 4, 1))
    n = 40
    image_index = torch.arange(n) // 2
    save_zoo(tmp_path / "a.safetensors", spec, spec.init_params(n), image_index=image_index)
    s = load_zoo(tmp_path / "a.safetensors").splits(seed=0)
    assert not set(image_index[s["train"]].tolist()) & set(image_index[s["test"]].tolist())
    is_test = (torch.arange(n) >= 30).float()  # a published split: the last 10 are test
    save_zoo(tmp_path / "b.safetensors", spec, spec.init_params(n), image_index=image_index,
             metrics={"is_test": is_test})
    s = load_zoo(tmp_path / "b.safetensors").splits(seed=0, fractions=(0.8, 0.1, 0.1))
    assert s["test"].tolist() == list(range(30, 40))
    assert [len(s["train"]), len(s["val"])] == [26, 4]  # 15 images, 8 : 1 (rounded)
    assert load_zoo(tmp_path / "b.safetensors").split("test").tolist() == list(range(30, 40))


def test_stored_split_is_returned_exactly(tmp_path: Path) -> None:
    spec = SirenSpec((2, 4, 1))
    n = 12
    split = torch.tensor([2, 0, 0, 1, 2, 0, 1, 0, 0, 2, 0, 1])
    # is_test disagrees on purpose: a stored split wins over it and over every argument
    save_zoo(tmp_path / "z.safetensors", spec, spec.init_params(n), split=split,
             image_index=torch.arange(n) // 3, metrics={"is_test": torch.zeros(n)})
    z = load_zoo(tmp_path / "z.safetensors")
    assert z.stored_split.dtype == torch.int64 and torch.equal(z.stored_split, split)
    assert "split" not in z.metric_names
    expected = {"train": [1, 2, 5, 7, 8, 10], "val": [3, 6, 11], "test": [0, 4, 9]}
    for kwargs in ({}, {"seed": 7, "fractions": (0.2, 0.2, 0.6)}, {"by_image": False}):
        assert {k: v.tolist() for k, v in z.splits(**kwargs).items()} == expected
    assert z.split("val").tolist() == [3, 6, 11]
    _write(tmp_path / "plain.safetensors", spec, n=4)
    assert load_zoo(tmp_path / "plain.safetensors").stored_split is None


def test_bad_stored_split(tmp_path: Path) -> None:
    spec = SirenSpec((2, 4, 1))
    with pytest.raises(SymmergeError, match=r"split values must be 0 \(train\), 1 \(val\) or 2 "
                       r"\(test\), found \[-1, 3\]"):
        save_zoo(tmp_path / "a.safetensors", spec, spec.init_params(4),
                 split=torch.tensor([0, 3, -1, 2]))
    with pytest.raises(SymmergeError, match="split has 3 entries, params has 4"):
        save_zoo(tmp_path / "a.safetensors", spec, spec.init_params(4), split=torch.zeros(3))
    with pytest.raises(SymmergeError, match="metric name 'split' is reserved"):
        save_zoo(tmp_path / "a.safetensors", spec, spec.init_params(4),
                 metrics={"split": torch.zeros(4)})
    assert not (tmp_path / "a.safetensors").exists()
    base = {"params": spec.init_params(4), "labels": torch.zeros(4, dtype=torch.long)}
    meta = {"format": FORMAT, "spec": spec.to_json()}
    _raw(tmp_path / "b.safetensors", {**base, "split": torch.tensor([0, 1, 5, 2])}, **meta)
    z = load_zoo(tmp_path / "b.safetensors")
    with pytest.raises(SymmergeError, match=r"b.safetensors: split values .* found \[5\]"):
        z.splits()
    _raw(tmp_path / "c.safetensors", {**base, "split": torch.zeros(4)}, **meta)
    with pytest.raises(SymmergeError, match="split is F32"):
        load_zoo(tmp_path / "c.safetensors")


@pytest.mark.parametrize(
    ("tensors", "meta", "match"),
    [
        ({}, {"provenance": "[1]"}, "provenance must be a JSON object"),
        ({}, {"spec": "[1, 2]"}, "a spec must be a JSON object"),
        ({}, {"spec": json.dumps({**SirenSpec().to_dict(), "w0": "x"})}, "invalid siren spec"),
        ({"labels": torch.zeros(3)}, {}, "labels is F32"),
        ({"params": torch.zeros(0, SirenSpec().num_params),
          "labels": torch.zeros(0, dtype=torch.long)}, {}, "holds no networks"),
    ],
    ids=["provenance", "spec-list", "spec-value", "label-dtype", "empty"],
)
def test_hand_edited_zoo_metadata_is_a_clear_error(tmp_path: Path, tensors, meta, match) -> None:
    spec = SirenSpec()
    base = {"params": torch.zeros(3, spec.num_params), "labels": torch.zeros(3, dtype=torch.long)}
    path = tmp_path / "z.safetensors"
    _raw(path, {**base, **tensors}, **{"format": FORMAT, "spec": spec.to_json(), **meta})
    with pytest.raises(SymmergeError, match=match):
        load_zoo(path)


def test_plain_splits_on_request(tmp_path: Path) -> None:
    spec = SirenSpec((2, 4, 1))
    is_test = (torch.arange(40) >= 30).float()
    save_zoo(tmp_path / "a.safetensors", spec, spec.init_params(40),
             image_index=torch.arange(40) // 2, metrics={"is_test": is_test})
    z = load_zoo(tmp_path / "a.safetensors")
    plain = split_indices(40, seed=1)
    assert all(torch.equal(z.splits(seed=1, by_image=False)[k], plain[k]) for k in plain)
    assert torch.equal(z.split_metrics()["is_test"], (torch.arange(40) >= 30).float())


def test_zoo_in_memory_behaves_like_its_file(tmp_path):
    spec = SirenSpec((2, 4, 1))
    params = spec.init_params(6, generator=torch.Generator().manual_seed(0))
    split = torch.tensor([0, 0, 0, 1, 2, 2])
    zoo = Zoo.from_tensors(params, spec, labels=torch.arange(6), image_index=torch.arange(6),
                           metrics={"psnr": torch.linspace(20, 25, 6)},
                           provenance={"data": "x"}, split=split)
    assert zoo.path is None and zoo.name == "in-memory zoo" and len(zoo) == 6
    assert torch.equal(zoo.get_params([4, 1]), params[[4, 1]])
    assert torch.equal(zoo.get_params(slice(1, 3)), params[1:3])
    with pytest.raises(SymmergeError, match="out of range"):
        zoo.get_params([6])
    assert zoo.splits()["test"].tolist() == [4, 5]
    saved = Zoo(zoo.save(tmp_path / "z.safetensors"))
    for name in ("params", "labels", "image_index", "stored_split"):
        assert torch.equal(getattr(saved, name), getattr(zoo, name)), name
    assert torch.equal(saved.metric("psnr"), zoo.metric("psnr"))
    assert saved.provenance["data"] == "x"
    bad = params.clone()
    bad[2, 0] = float("nan")
    with pytest.raises(SymmergeError, match="NaN"):
        Zoo.from_tensors(bad, spec)
    with pytest.raises(SymmergeError, match="labels has 5 entries"):
        Zoo.from_tensors(params, spec, labels=torch.arange(5))
