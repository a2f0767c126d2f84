"""Importers of the published zoos, checked against the fixtures' own functions."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from symmerge import CNNSpec, SirenSpec, SymmergeError
from symmerge.symmetry import tolerance
from symmerge.zoo.importers import (
    LayoutRow,
    cnn_spec_from_layout,
    import_cnn_zoo,
    import_dwsnets,
    read_cnn_zoo_layout,
)
from symmerge.zoo.io import load_zoo
from tests.zoo.published import (
    DEFAULT_CNN_LAYOUT,
    ReferenceSiren,
    cnn_layout_rows,
    inr_folder,
    make_cnn_zoo,
    make_dwsnets_tree,
    tf_forward,
    write_inr,
    write_layout_csv,
)

ENTRIES = [("testing", 3, 2), ("training", 5, 10), ("training", 1, 9), ("testing", 0, 0)]


# ------------------------------------------------------------------ DWSNets
def test_dwsnets_order_labels_and_functions(tmp_path: Path) -> None:
    nets = make_dwsnets_tree(tmp_path / "mnist-inrs", ENTRIES)
    zoo = import_dwsnets(tmp_path / "mnist-inrs", progress=False)
    assert zoo.spec == SirenSpec((2, 32, 32, 1), w0=30.0, output_offset=0.5)
    # training before testing, then by numeric image index
    assert zoo.image_index.tolist() == [9, 10, 0, 2]
    assert zoo.labels.tolist() == [1, 5, 0, 3]
    assert zoo.metrics["is_test"].tolist() == [0, 0, 1, 1]
    assert zoo.provenance["count"] == 4 and zoo.provenance["testing_count"] == 2
    assert zoo.provenance["importer"] == "dwsnets"
    ordered = sorted(ENTRIES, key=lambda e: (e[0] == "testing", e[2]))
    order = [inr_folder(split, label, index) for split, label, index in ordered]
    coords = torch.rand(50, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for i, folder in enumerate(order):
        ref = nets[folder]
        with torch.no_grad():
            expected = ref(coords)
            torch.testing.assert_close(zoo.spec.module(zoo.params[i])(coords), expected)
            torch.testing.assert_close(zoo.spec.forward(zoo.params[i], coords), expected)


def test_dwsnets_infers_layout_and_saves(tmp_path: Path) -> None:
    make_dwsnets_tree(tmp_path, [("training", 7, 0), ("training", 2, 1)], layout=(2, 8, 6, 5, 1))
    zoo = import_dwsnets(tmp_path, w0=30.0, progress=False)
    assert zoo.spec.layout == (2, 8, 6, 5, 1)
    zoo.save(tmp_path / "z.safetensors")
    z = load_zoo(tmp_path / "z.safetensors")
    assert z.spec == zoo.spec and torch.equal(z.params, zoo.params)
    assert z.image_index.tolist() == [0, 1] and z.labels.tolist() == [7, 2]
    assert z.metric("is_test").tolist() == [0, 0] and z.provenance["source"] == str(tmp_path)


def _broken_tree(tmp_path: Path, state_change) -> Path:
    make_dwsnets_tree(tmp_path, [("training", 1, 0), ("training", 2, 1)], layout=(2, 4, 1))
    folder = inr_folder("training", 2, 1)
    state = ReferenceSiren((2, 4, 1)).state_dict()
    state_change(state)
    return write_inr(tmp_path, folder, state)


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda s: s.update({"seq.1.weight": torch.zeros(1, 5)}), r"'seq.1.weight' has shape"),
        (lambda s: s["seq.0.bias"].__setitem__(2, float("nan")), "NaN or infinite"),
        (lambda s: s.update({"extra": torch.zeros(1)}), "unexpected keys"),
        (lambda s: s.pop("seq.1.bias"), "missing keys"),
        (lambda s: s.update({"seq.1.bias": s["seq.1.bias"] + 1j}), "complex"),
    ],
)
def test_dwsnets_bad_checkpoint_is_named(tmp_path: Path, change, pattern: str) -> None:
    bad = _broken_tree(tmp_path, change)
    with pytest.raises(SymmergeError, match=pattern) as info:
        import_dwsnets(tmp_path, progress=False)
    assert str(bad) in str(info.value)


def test_dwsnets_first_checkpoint_defines_layout(tmp_path: Path) -> None:
    write_inr(tmp_path, inr_folder("training", 0, 0), {"layers.0.weight": torch.zeros(2, 2)})
    with pytest.raises(SymmergeError, match=r"expected keys seq\.\{i\}\.weight"):
        import_dwsnets(tmp_path, progress=False)
    write_inr(tmp_path, inr_folder("training", 0, 0), {"seq.0.weight": torch.zeros(2),
                                                        "seq.0.bias": torch.zeros(2)})
    with pytest.raises(SymmergeError, match="must be 2-D"):
        import_dwsnets(tmp_path, progress=False)


class _Exploit:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return os.remove, (str(self.target),)


def test_dwsnets_unreadable_and_unsafe_checkpoints(tmp_path: Path) -> None:
    make_dwsnets_tree(tmp_path, [("training", 1, 0)], layout=(2, 4, 1))
    path = tmp_path / inr_folder("training", 1, 0) / "checkpoints" / "model_final.pth"
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("keep")
    torch.save({"seq.0.weight": _Exploit(sentinel)}, path)
    with pytest.raises(SymmergeError, match="cannot read checkpoint .*weights_only") as info:
        import_dwsnets(tmp_path, progress=False)
    assert sentinel.exists() and "\n" not in str(info.value)
    assert "remove" in str(info.value) and "set to `False`" not in str(info.value)  # the reason
    path.write_bytes(b"\x80\x02garbage")
    with pytest.raises(SymmergeError, match=f"cannot read checkpoint {path}"):
        import_dwsnets(tmp_path, progress=False)
    torch.save([torch.zeros(2)], path)
    with pytest.raises(SymmergeError, match="not a state dict of tensors"):
        import_dwsnets(tmp_path, progress=False)


def test_dwsnets_duplicate_image(tmp_path: Path) -> None:
    make_dwsnets_tree(tmp_path / "a", [("training", 1, 0)], layout=(2, 4, 1))
    make_dwsnets_tree(tmp_path / "b", [("training", 1, 0), ("testing", 1, 0)], layout=(2, 4, 1))
    with pytest.raises(SymmergeError, match="two INRs for training image 0"):
        import_dwsnets(tmp_path, progress=False)
    assert len(import_dwsnets(tmp_path / "b", progress=True)) == 2


def test_dwsnets_bad_tree(tmp_path: Path) -> None:
    with pytest.raises(SymmergeError, match="directory not found"):
        import_dwsnets(tmp_path / "absent")
    with pytest.raises(SymmergeError, match="no \\*/checkpoints/model_final.pth files found"):
        import_dwsnets(tmp_path)
    write_inr(tmp_path, "mnist_png_validation_3_1", ReferenceSiren((2, 4, 1)).state_dict())
    with pytest.raises(SymmergeError, match="cannot read split, label and index .*validation"):
        import_dwsnets(tmp_path)


# ------------------------------------------------------------ Small CNN Zoo
@pytest.mark.parametrize("layout", [DEFAULT_CNN_LAYOUT, (1, 4, 4, 3)], ids=["default", "small"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_cnn_zoo_matches_tf_forward(tmp_path: Path, layout, activation: str, dtype) -> None:
    tf_weights = make_cnn_zoo(tmp_path, layout=layout)
    zoo = import_cnn_zoo(tmp_path, activation)
    assert zoo.spec == CNNSpec(tuple(layout), activation, kernel_size=3, stride=2)
    steps = np.array([0, 86, 86, 40, 86, 86, 86, 0])
    acts = np.array(["relu", "relu", "tanh", "relu", "relu", "tanh", "relu", "tanh"])
    keep = np.flatnonzero((steps == 86) & (acts == activation))
    assert zoo.metrics["source_row"].tolist() == keep.tolist()
    assert zoo.labels.tolist() == [-1] * len(keep)
    rng = np.random.default_rng(2)
    images = rng.uniform(-1, 1, size=(5, 32, 32, layout[0]))  # NHWC
    rows = cnn_layout_rows(layout)
    expected = np.stack([tf_forward(tf_weights[r], rows, images, activation) for r in keep])
    inputs = torch.from_numpy(images.transpose(0, 3, 1, 2)).to(dtype)
    got = zoo.spec.forward(zoo.params.to(dtype), inputs)
    tol = max(tolerance(dtype), 1e-10)
    np.testing.assert_allclose(got.numpy(), expected, rtol=tol, atol=tol)


def test_cnn_zoo_metrics_and_formats(tmp_path: Path) -> None:
    make_cnn_zoo(tmp_path / "gz", layout=(1, 4, 4, 3), gz=True)
    make_cnn_zoo(tmp_path / "plain", layout=(1, 4, 4, 3), gz=False, train_accuracy=False)
    a, b = import_cnn_zoo(tmp_path / "gz", "relu"), import_cnn_zoo(tmp_path / "plain", "relu")
    assert torch.equal(a.params, b.params)
    assert torch.equal(a.metrics["test_accuracy"], b.metrics["test_accuracy"])
    assert sorted(a.metrics) == ["source_row", "test_accuracy", "train_accuracy"]
    assert sorted(b.metrics) == ["source_row", "test_accuracy"]
    with open(tmp_path / "plain" / "metrics.csv", newline="") as f:
        table = list(csv.DictReader(f))
    expected = [float(table[r]["test_accuracy"]) for r in (1, 4, 6)]
    assert a.metrics["test_accuracy"].tolist() == pytest.approx(expected)
    assert a.provenance["final_step"] == 86 and a.provenance["count"] == 3
    a.save(tmp_path / "z.safetensors")
    z = load_zoo(tmp_path / "z.safetensors")
    assert z.spec == a.spec and z.metric_names == ["source_row", "test_accuracy", "train_accuracy"]


def test_cnn_zoo_layout_must_be_contiguous_and_sorted(tmp_path: Path) -> None:
    rows = cnn_layout_rows((1, 4, 4, 3))
    path = tmp_path / "layout.csv"
    write_layout_csv(path, [rows[1], rows[0], *rows[2:]])  # bias before kernel: sorted, wrong
    with pytest.raises(SymmergeError, match="expected a square conv kernel"):
        cnn_spec_from_layout(read_cnn_zoo_layout(path), "relu")
    write_layout_csv(path, rows)
    text = path.read_text().splitlines()
    unsorted = [text[0], text[2], text[1], *text[3:]]
    path.write_text("\n".join(unsorted) + "\n")
    with pytest.raises(SymmergeError, match="line 2: .* starts at 36, expected 0"):
        read_cnn_zoo_layout(path)
    gap = text[:2] + [text[2].replace(",36,40,", ",37,41,")] + text[3:]
    path.write_text("\n".join(gap) + "\n")
    with pytest.raises(SymmergeError, match="contiguous and sorted"):
        read_cnn_zoo_layout(path)
    wrong = text[:1] + [text[1].replace(",0,36,", ",0,35,")] + text[2:]
    path.write_text("\n".join(wrong) + "\n")
    with pytest.raises(SymmergeError, match=r"spans 0:35 but has shape \(3, 3, 1, 4\)"):
        read_cnn_zoo_layout(path)


@pytest.mark.parametrize(("row", "fields"), [("k,0,9", 3), ('k,0,9,"(3, 3)",x', 5)])
def test_cnn_zoo_csv_rows_must_match_the_header(tmp_path: Path, row: str, fields: int) -> None:
    path = tmp_path / "layout.csv"
    path.write_text(f'varname,start_idx,end_idx,shape\nk0,0,9,"(3, 3)"\n{row}\n')
    with pytest.raises(SymmergeError, match=f"layout.csv line 3 has {fields} fields, its header 4"):
        read_cnn_zoo_layout(path)


@pytest.mark.parametrize("shape", ["__import__('os').getcwd()", "[3, 3]", "(3, -1)", "(3, 'a')"])
def test_cnn_zoo_layout_shapes_are_literals(tmp_path: Path, shape: str) -> None:
    path = tmp_path / "layout.csv"
    path.write_text(f'varname,start_idx,end_idx,shape\nk,0,9,"{shape}"\n')
    with pytest.raises(SymmergeError, match="line 2"):
        read_cnn_zoo_layout(path)


def _rows(*shapes: tuple[int, ...]) -> list[LayoutRow]:
    out, start = [], 0
    for i, s in enumerate(shapes):
        end = start + int(np.prod(s))
        out.append(LayoutRow(f"v{i}", start, end, s))
        start = end
    return out


@pytest.mark.parametrize(
    ("shapes", "pattern"),
    [
        ([(3, 3, 1, 4), (4,)], "got 2 rows"),
        ([(3, 3, 1, 4), (4,), (3, 3, 4, 4)], "got 3 rows"),
        ([(3, 3, 1, 4), (5,), (4, 2), (2,)], r"expected the bias \(4,\)"),
        ([(3, 3, 1, 4), (4,), (5, 2), (2,)], "takes 5 channels"),
        ([(3, 3, 1, 4), (4,), (3, 3, 4, 2), (2,)], "must be dense"),
        ([(3, 2, 1, 4), (4,), (4, 2), (2,)], "square conv kernel"),
        ([(3, 3, 1, 4), (4,), (5, 5, 4, 4), (4,), (4, 2), (2,)], r"one size, got \[3, 5\]"),
    ],
)
def test_cnn_spec_from_bad_layouts(shapes, pattern: str) -> None:
    with pytest.raises(SymmergeError, match=pattern):
        cnn_spec_from_layout(_rows(*shapes), "relu")


def test_cnn_spec_from_layout_other_kernel() -> None:
    spec = cnn_spec_from_layout(_rows((5, 5, 3, 8), (8,), (8, 2), (2,)), "tanh", stride=1)
    assert spec == CNNSpec((3, 8, 2), "tanh", kernel_size=5, stride=1)


def test_cnn_zoo_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(SymmergeError, match="directory not found"):
        import_cnn_zoo(tmp_path / "absent", "relu")
    with pytest.raises(SymmergeError, match=r"missing weights.npy, metrics.csv.gz, layout.csv in"):
        import_cnn_zoo(tmp_path, "relu")
    make_cnn_zoo(tmp_path, layout=(1, 4, 4, 3))
    with pytest.raises(SymmergeError, match="activation must be one of relu, tanh"):
        import_cnn_zoo(tmp_path, "sine")
    (tmp_path / "layout.csv").unlink()
    with pytest.raises(SymmergeError, match=r"^missing layout.csv in .*put the Small CNN Zoo"):
        import_cnn_zoo(tmp_path, "relu")


def test_cnn_zoo_inconsistent_files(tmp_path: Path) -> None:
    make_cnn_zoo(tmp_path, layout=(1, 4, 4, 3), activations=["tanh"] * 8)
    with pytest.raises(SymmergeError, match=r"no checkpoints with .*'relu' .*\(found: tanh\)"):
        import_cnn_zoo(tmp_path, "relu")
    weights = np.load(tmp_path / "weights.npy")
    np.save(tmp_path / "weights.npy", weights[:5])
    with pytest.raises(SymmergeError, match="has 8 rows, .* has 5"):
        import_cnn_zoo(tmp_path, "tanh")
    np.save(tmp_path / "weights.npy", weights[:, :-1])
    with pytest.raises(SymmergeError, match="rows have 202 values, .* covers 203"):
        import_cnn_zoo(tmp_path, "tanh")
    np.save(tmp_path / "weights.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(SymmergeError, match="cannot read .*weights.npy"):
        import_cnn_zoo(tmp_path, "tanh")
    np.save(tmp_path / "weights.npy", np.zeros((0, 203), np.float32))
    (tmp_path / "metrics.csv.gz").unlink()
    (tmp_path / "metrics.csv").write_text("step,test_accuracy,config.activation\n")
    with pytest.raises(SymmergeError, match="metrics.csv has no rows"):
        import_cnn_zoo(tmp_path, "tanh")
    (tmp_path / "metrics.csv").write_text("step,test_accuracy\n1,0.5\n")
    with pytest.raises(SymmergeError, match="metrics.csv has no column config.activation"):
        import_cnn_zoo(tmp_path, "tanh")


def test_cnn_zoo_non_finite_rows(tmp_path: Path) -> None:
    weights = make_cnn_zoo(tmp_path, layout=(1, 4, 4, 3))
    weights[0, 3] = np.nan  # step 0: not imported, not checked
    np.save(tmp_path / "weights.npy", weights)
    assert len(import_cnn_zoo(tmp_path, "relu")) == 3
    weights[4, 5] = np.inf
    np.save(tmp_path / "weights.npy", weights)
    with pytest.raises(SymmergeError, match=r"rows \[4\] contain NaN or infinite"):
        import_cnn_zoo(tmp_path, "relu")
