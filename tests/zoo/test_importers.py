"""Importers of the published zoos, checked against the fixtures' own functions."""

from __future__ import annotations

import csv
import json
import os
import random
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
from symmerge.zoo.published_splits import nfn_split_codes
from tests.zoo.published import (
    DEFAULT_CNN_LAYOUT,
    ReferenceSiren,
    cnn_layout_rows,
    inr_folder,
    make_cnn_zoo,
    make_dwsnets_tree,
    make_fmnist_tree,
    make_orbit_tree,
    mnist_split_path,
    orbit_folder,
    tf_forward,
    write_fmnist_inr,
    write_index_csv,
    write_inr,
    write_layout_csv,
    write_split_json,
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
    with pytest.raises(SymmergeError, match=r"no \*/checkpoints/model_final.pth \(MNIST\) or "):
        import_dwsnets(tmp_path)
    write_inr(tmp_path, "mnist_png_validation_3_1", ReferenceSiren((2, 4, 1)).state_dict())
    with pytest.raises(SymmergeError, match="cannot read split, label and index .*validation"):
        import_dwsnets(tmp_path)


# ------------------------------------------------ published split files (INRs)
SPLIT_ENTRIES = [("training", 3, 0), ("training", 1, 1), ("training", 4, 2), ("training", 1, 3),
                 ("testing", 7, 0), ("testing", 2, 1)]
#: a published assignment: val drawn from training, test = testing (DWSNets' script)
ASSIGNED = {("training", 0): "train", ("training", 1): "val", ("training", 2): "train",
            ("training", 3): "val", ("testing", 0): "test", ("testing", 1): "test"}


def _mnist_split_file(path: Path, entries=SPLIT_ENTRIES, assigned=ASSIGNED, **kwargs) -> None:
    splits: dict[str, list] = {}
    for split, label, index in entries:
        name = assigned.get((split, index))
        if name is not None:
            splits.setdefault(name, []).append(
                (mnist_split_path(inr_folder(split, label, index), **kwargs), str(label)))
    write_split_json(path, splits)


def test_dwsnets_split_file_is_kept(tmp_path: Path) -> None:
    root = tmp_path / "mnist-inrs"
    make_dwsnets_tree(root, SPLIT_ENTRIES, layout=(2, 4, 1))
    _mnist_split_file(root / "mnist_splits.json", prefix="/home/someone/data/mnist-inrs")
    zoo = import_dwsnets(root, progress=False)
    # order as without a split file: training before testing, then by image index
    assert zoo.image_index.tolist() == [0, 1, 2, 3, 0, 1]
    assert zoo.labels.tolist() == [3, 1, 4, 1, 7, 2]
    assert zoo.metrics["is_test"].tolist() == [0, 0, 0, 0, 1, 1]  # which images image_index means
    codes = {"train": 0, "val": 1, "test": 2}
    expected = [codes[ASSIGNED[(s, i)]] for s, i in [("training", i) for i in range(4)]
                + [("testing", 0), ("testing", 1)]]
    assert zoo.split.tolist() == expected
    assert zoo.provenance["split_file"] == str((root / "mnist_splits.json").resolve())
    assert zoo.provenance["split_counts"] == {"train": 2, "val": 2, "test": 2}
    zoo.save(tmp_path / "z.safetensors")
    z = load_zoo(tmp_path / "z.safetensors")
    for seed in (0, 5):  # the stored assignment, whatever the seed
        parts = z.splits(seed=seed, fractions=(0.5, 0.25, 0.25))
        assert {k: v.tolist() for k, v in parts.items()} == {
            "train": [0, 2], "val": [1, 3], "test": [4, 5]}


def test_dwsnets_split_file_given_and_subset(tmp_path: Path) -> None:
    """An explicit split file (DWSNets writes it beside the folder) that lists a subset."""
    root = tmp_path / "dataset" / "mnist-inrs"
    make_dwsnets_tree(root, SPLIT_ENTRIES, layout=(2, 4, 1))
    subset = {k: v for k, v in ASSIGNED.items() if k != ("training", 2)}
    _mnist_split_file(tmp_path / "dataset" / "small_splits.json", assigned=subset)
    zoo = import_dwsnets(root, split_file=tmp_path / "dataset" / "small_splits.json",
                         progress=False)
    assert zoo.image_index.tolist() == [0, 1, 3, 0, 1] and zoo.split.tolist() == [0, 1, 1, 2, 2]
    assert zoo.provenance["not_in_split_file"] == 1
    without = import_dwsnets(root, progress=False)  # no split file in the folder
    assert without.split is None and len(without) == 6


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda d: d["test"].update(path=[*d["test"]["path"], mnist_split_path(
            inr_folder("testing", 5, 9))], label=[*d["test"]["label"], "5"]),
         r"names 1 network that is not under .*: dataset/mnist-inrs/mnist_png_testing_5_9/"),
        (lambda d: d["val"]["path"].__setitem__(0, d["train"]["path"][0]),
         r"lists mnist_png_training_3_0/checkpoints/model_final.pth twice \(train and val\)"),
        (lambda d: d["train"]["label"].__setitem__(0, "8"),
         r"gives .*mnist_png_training_3_0.* label 8, its folder name says 3"),
        (lambda d: d.update({"plot_epoch": d["test"]}), r"has split 'plot_epoch'; expected"),
        (lambda d: d["test"]["label"].pop(), "has 2 paths and 1 labels"),
        (lambda d: d["test"]["label"].__setitem__(0, "seven"), "not an integer class label"),
        (lambda d: d.update({"val": "x"}), r"split 'val' must be"),
    ],
    ids=["absent", "twice", "label", "unknown-split", "lengths", "label-type", "shape"],
)
def test_dwsnets_bad_split_file(tmp_path: Path, edit, pattern: str) -> None:
    root = tmp_path / "mnist-inrs"
    make_dwsnets_tree(root, SPLIT_ENTRIES, layout=(2, 4, 1))
    path = root / "mnist_splits.json"
    _mnist_split_file(path)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(SymmergeError, match=pattern):
        import_dwsnets(root, progress=False)


def test_dwsnets_split_file_unreadable_or_ambiguous(tmp_path: Path) -> None:
    root = tmp_path / "mnist-inrs"
    make_dwsnets_tree(root, SPLIT_ENTRIES, layout=(2, 4, 1))
    (root / "mnist_splits.json").write_text("{not json")
    with pytest.raises(SymmergeError, match="mnist_splits.json is not valid JSON"):
        import_dwsnets(root, progress=False)
    _mnist_split_file(root / "mnist_splits.json")
    _mnist_split_file(root / "other_splits.json")
    with pytest.raises(SymmergeError, match="several split files .*choose one with split_file"):
        import_dwsnets(root, progress=False)
    assert len(import_dwsnets(root, split_file=root / "other_splits.json", progress=False)) == 6
    with pytest.raises(SymmergeError, match="split file not found: .*absent.json"):
        import_dwsnets(root, split_file=tmp_path / "absent.json", progress=False)


# ------------------------------------------------------------ orbit datasets
def test_orbit_dataset_as_published(tmp_path: Path) -> None:
    base = make_orbit_tree(tmp_path / "orbit", members=12)
    zoo = import_dwsnets(tmp_path / "orbit", progress=False)
    assert zoo.image_index.tolist() == [3665] * 12 and zoo.labels.tolist() == [6] * 12
    assert zoo.metrics["orbit_member"].tolist() == list(range(12))  # numeric, not 0, 1, 10, ...
    assert zoo.metrics["is_test"].tolist() == [1] * 12
    assert zoo.split.tolist() == [2] * 12  # the orbit's split file: one test split
    assert zoo.provenance["naming"] == "mnist-orbit"
    assert zoo.provenance["orbit_images"] == ["mnist_png_testing_6_3665"]
    coords = torch.rand(64, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        expected = base(coords).expand(12, -1, -1)
        torch.testing.assert_close(zoo.spec.forward(zoo.params, coords), expected)
    member_5 = tmp_path / "orbit" / orbit_folder("testing", 6, 3665, 5)
    state = torch.load(member_5 / "checkpoints" / "model_final.pth")
    assert torch.equal(zoo.params[5], zoo.spec.from_state_dict(state))


def test_orbit_folder_mixing_images(tmp_path: Path) -> None:
    make_orbit_tree(tmp_path / "two", members=3, split_file=False)
    make_orbit_tree(tmp_path / "two", image=("training", 2, 23089), members=2, seed=1,
                    split_file=False)
    with pytest.raises(SymmergeError, match=r"mixes the orbits of 2 images \(mnist_png_testing_6_"
                       r"3665, mnist_png_training_2_23089\).*several_orbits=True"):
        import_dwsnets(tmp_path / "two", progress=False)
    zoo = import_dwsnets(tmp_path / "two", several_orbits=True, progress=False)
    assert zoo.image_index.tolist() == [23089, 23089, 3665, 3665, 3665]
    assert zoo.metrics["orbit_member"].tolist() == [0, 1, 0, 1, 2] and zoo.split is None
    make_orbit_tree(tmp_path / "two", image=("training", 5, 23089), members=3, seed=2,
                    split_file=False)  # image 23089 again, under another label
    with pytest.raises(SymmergeError, match="two INRs for training image 23089 "
                       r"\(orbit member 0\): .*_2_23089_augmented_0.* and .*_5_23089_augmented_0"):
        import_dwsnets(tmp_path / "two", several_orbits=True, progress=False)
    make_dwsnets_tree(tmp_path / "mixed", [("testing", 1, 0)], layout=(2, 8, 8, 1))
    make_orbit_tree(tmp_path / "mixed", members=2, split_file=False)
    with pytest.raises(SymmergeError, match="mixes orbit members .* with plain INR folders"):
        import_dwsnets(tmp_path / "mixed", several_orbits=True, progress=False)


# ------------------------------------------------------------ Fashion-MNIST
FMNIST = [("train", 4, 20814), ("train", 9, 938), ("train", 0, 5), ("test", 3, 7), ("test", 1, 0)]


def test_fmnist_layout_and_split_file(tmp_path: Path) -> None:
    root = tmp_path / "fmnist_inrs"
    nets = make_fmnist_tree(root, FMNIST)
    zoo = import_dwsnets(root, progress=False)  # no split file: the folders
    assert zoo.image_index.tolist() == [5, 938, 20814, 0, 7]
    assert zoo.labels.tolist() == [0, 9, 4, 1, 3]
    assert zoo.metrics["is_test"].tolist() == [0, 0, 0, 1, 1] and zoo.split is None
    assert zoo.provenance["naming"] == "fashion-mnist"
    coords = torch.rand(30, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(zoo.spec.forward(zoo.params[1], coords),
                                   nets[("train", 938)](coords))
    # the Neural Graphs form: val drawn from the train folder, integer labels
    write_split_json(root / "fmnist_splits.json", {
        "train": [("fmnist_inrs/train/model_20814.pth", 4), ("fmnist_inrs/train/model_5.pth", 0)],
        "val": [("fmnist_inrs/train/model_938.pth", 9)],
        "test": [("fmnist_inrs/test/model_0.pth", 1), ("fmnist_inrs/test/model_7.pth", 3)],
    })
    zoo = import_dwsnets(root, progress=False)
    assert zoo.split.tolist() == [0, 1, 0, 2, 2] and zoo.labels.tolist() == [0, 9, 4, 1, 3]
    # DWSNets' own splits.json: lists of paths, no labels
    (root / "fmnist_splits.json").unlink()
    (root / "splits.json").write_text(json.dumps({
        "train": ["/x/fmnist_inrs/train/model_5.pth"],
        "val": ["/x/fmnist_inrs/train/model_938.pth"],
        "test": ["/x/fmnist_inrs/test/model_7.pth"]}))
    zoo = import_dwsnets(root, progress=False)
    assert zoo.image_index.tolist() == [5, 938, 7] and zoo.split.tolist() == [0, 1, 2]


def test_fmnist_bad_checkpoints(tmp_path: Path) -> None:
    root = tmp_path / "fmnist_inrs"
    nets = make_fmnist_tree(root, FMNIST[:2])
    state = nets[("train", 938)].state_dict()
    torch.save(state, root / "train" / "model_938.pth")
    with pytest.raises(SymmergeError, match=r"model_938.pth has no 'label' entry"):
        import_dwsnets(root, progress=False)
    write_fmnist_inr(root, "train", 938, state, "shirt")
    with pytest.raises(SymmergeError, match=r"model_938.pth: 'label' is not an integer"):
        import_dwsnets(root, progress=False)
    write_fmnist_inr(root, "train", 938, state, torch.tensor(9))  # a tensor label is fine
    assert import_dwsnets(root, progress=False).labels.tolist() == [9, 4]
    make_dwsnets_tree(root / "mnist", [("training", 1, 0)], layout=(2, 8, 8, 1))
    with pytest.raises(SymmergeError, match="holds both MNIST INR folders .* and Fashion-MNIST"):
        import_dwsnets(root, progress=False)


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


# ------------------------------------------------- Small CNN Zoo: published split
def _published_rule(order, steps, acts, activation: str) -> tuple[list[int], list[str]]:
    """The rule of the NFN / Neural Graphs / ScaleGMN loaders, restated on row numbers: rows
    in index-file order, final ones (step 86), last half test, first half shuffled by
    random.Random(0) and cut 4:1 into train / val, then the activation filter."""
    final = [r for r in order if steps[r] == 86]
    half = len(final) // 2
    first, test = final[:half], final[half:]
    random.Random(0).shuffle(first)
    n_train = len(first) * 4 // 5
    which = {**{r: "train" for r in first[:n_train]}, **{r: "val" for r in first[n_train:]},
             **{r: "test" for r in test}}
    rows = [r for r in final if acts[r] == activation]
    return rows, [which[r] for r in rows]


@pytest.mark.parametrize("n_rows", [47, 60])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_cnn_zoo_published_split(tmp_path: Path, n_rows: int, activation: str) -> None:
    rng = np.random.default_rng(n_rows)
    steps = rng.choice([0, 40, 86, 86, 86, 90], size=n_rows).tolist()  # 90: not final by value
    acts = rng.choice(["relu", "tanh"], size=n_rows).tolist()
    weights = make_cnn_zoo(tmp_path, layout=(1, 4, 4, 3), steps=steps, activations=acts)
    order = rng.permutation(n_rows).tolist()
    write_index_csv(tmp_path / "nfn_cifar10_split.csv", order)
    zoo = import_cnn_zoo(tmp_path, activation, split_file=tmp_path / "nfn_cifar10_split.csv")
    rows, names = _published_rule(order, steps, acts, activation)
    assert zoo.metrics["source_row"].tolist() == rows
    assert [("train", "val", "test")[c] for c in zoo.split.tolist()] == names
    assert set(names) == {"train", "val", "test"}
    spec = zoo.spec
    assert torch.equal(zoo.params, spec.from_tf_flat(torch.from_numpy(weights[rows])))
    assert zoo.provenance["final_step"] == 86
    assert zoo.provenance["split_counts"] == {k: names.count(k) for k in ("train", "val", "test")}
    zoo.save(tmp_path / "z.safetensors")
    parts = load_zoo(tmp_path / "z.safetensors").splits(seed=3)
    assert {k: v.tolist() for k, v in parts.items()} == {
        k: [i for i, name in enumerate(names) if name == k] for k in ("train", "val", "test")}


def test_nfn_split_codes_against_the_rule() -> None:
    for n in (0, 1, 2, 3, 7, 10, 101):
        expected = ["test"] * n
        first = list(range(n // 2))
        random.Random(0).shuffle(first)
        for i, pos in enumerate(first):
            expected[pos] = "train" if i < len(first) * 4 // 5 else "val"
        assert [("train", "val", "test")[c] for c in nfn_split_codes(n)] == expected


def test_cnn_zoo_split_file_errors(tmp_path: Path) -> None:
    make_cnn_zoo(tmp_path, layout=(1, 4, 4, 3), steps=(0, 85, 85, 40, 85, 85, 85, 0))
    index = tmp_path / "split.csv"
    write_index_csv(index, range(8))
    with pytest.raises(SymmergeError, match=r"no final checkpoints \(step == 86\) .*steps found: "
                       r"0, 40, 85"):
        import_cnn_zoo(tmp_path, "relu", split_file=index)
    assert len(import_cnn_zoo(tmp_path, "relu")) == 3  # without it: the largest step, as before
    write_index_csv(index, range(7))
    with pytest.raises(SymmergeError, match="has 7 row indices, weights.npy has 8 rows"):
        import_cnn_zoo(tmp_path, "relu", split_file=index)
    write_index_csv(index, [0, 1, 2, 3, 4, 5, 6, 6])
    with pytest.raises(SymmergeError, match="not a permutation of the rows 0..7"):
        import_cnn_zoo(tmp_path, "relu", split_file=index)
    index.write_text("row\n" + "".join(f"{i}\n" for i in range(8)))
    with pytest.raises(SymmergeError, match=r"line 1: 'row' is not a row index .*no header"):
        import_cnn_zoo(tmp_path, "relu", split_file=index)
    with pytest.raises(SymmergeError, match="index file not found"):
        import_cnn_zoo(tmp_path, "relu", split_file=tmp_path / "absent.csv")
