"""``symmerge eval`` and the quality ``symmerge merge`` reports: a zoo network's stored
held-out accuracy reproduced, a merge's table and metadata, clear errors."""

import json

import pytest
import torch
from safetensors import safe_open

from symmerge import CNNSpec
from symmerge.zoo import load_zoo, save_zoo
from symmerge.zoo.train_cnn import CNNTrainConfig, train_cnn_zoo
from tests.cli._util import run_cli


@pytest.fixture(scope="module")
def cnn_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cnn") / "cnn.safetensors"
    train_cnn_zoo("mnist-embedded", out=path, n=3, activation="relu", progress=False,
                  config=CNNTrainConfig(hidden=(6, 6), steps=80), workers=1)
    return path


def _json(args, capsys):
    code, out, err = run_cli(["eval", *args, "--json", "--device", "cpu"], capsys)
    assert code == 0, err
    return json.loads(out)


def test_eval_reproduces_a_zoo_networks_stored_held_out_accuracy(cnn_path, capsys):
    stored = load_zoo(cnn_path).metric("test_accuracy")
    for i in range(3):
        got = _json([f"{cnn_path}:{i}"], capsys)
        assert torch.tensor(got["metrics"]["accuracy"], dtype=torch.float32) == stored[i]
        assert got["kind"] == "classifier" and got["examples"] == 1000
        assert got["settings"]["input_transform"] == "x * 2 - 1"
    code, out, err = run_cli(["eval", f"{cnn_path}:0", "--device", "cpu"], capsys)
    assert code == 0, err
    assert len(out.splitlines()) == 1 and "accuracy" in out and "cross_entropy" in out
    assert "1000 held-out images of mnist-embedded" in out and "x * 2 - 1" in out
    raw = _json([f"{cnn_path}:0", "--input-transform", "none"], capsys)
    assert raw["settings"]["input_transform"] == "none"


def test_merge_reports_and_stores_the_quality_of_inputs_and_output(cnn_path, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    refs = [f"{cnn_path}:0", f"{cnn_path}:2"]
    code, stdout, err = run_cli(["merge", *refs, "--method", "wm", "--out", out, "--device",
                                 "cpu"], capsys)
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[1].startswith("quality on 1000 held-out images of mnist-embedded")
    assert lines[2].split() == ["network", "accuracy", "cross_entropy"]
    rows = {line.split()[0]: [float(x) for x in line.split()[1:]] for line in lines[3:]}
    assert list(rows) == [*refs, "merged"]
    with safe_open(str(out), framework="pt") as f:
        stored = json.loads(f.metadata()["quality"])
    assert [r["network"] for r in stored["inputs"]] == refs
    for ref, row in zip(refs, stored["inputs"], strict=True):
        assert row == {"network": ref, **_json([ref], capsys)["metrics"]}
        assert rows[ref] == pytest.approx([row["accuracy"], row["cross_entropy"]], abs=1e-4)
    # eval of the merged file repeats the stored evaluation
    assert _json([out], capsys)["metrics"] == stored["merged"]


def test_merge_without_data_says_so(tmp_path, capsys):
    spec = CNNSpec((1, 4, 10), "relu")
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"n{i}.pth")
        params = spec.init_params(1, generator=torch.Generator().manual_seed(i))[0]
        torch.save(spec.module(params).state_dict(), paths[-1])
    out = tmp_path / "m.safetensors"
    code, stdout, err = run_cli(["merge", *paths, "--spec", spec.to_json(), "--out", out,
                                 "--device", "cpu"], capsys)
    assert code == 0, err
    assert stdout.splitlines()[1:] == [
        "quality not measured: no input records evaluation data: pass --data SOURCE"]
    with safe_open(str(out), framework="pt") as f:
        assert "quality" not in f.metadata()
    code, stdout, err = run_cli(["merge", *paths, "--spec", spec.to_json(), "--out", out,
                                 "--data", "mnist-embedded", "--device", "cpu"], capsys)
    assert code == 0, err
    assert "input transform none" in stdout.splitlines()[1]
    assert [line.split()[0] for line in stdout.splitlines()[3:]] == [*map(str, paths), "merged"]


def test_merge_of_a_zoo_without_images_says_so(cnn_path, tmp_path, capsys):
    """An imported Small CNN Zoo names no images: the merge is written, with a note."""
    zoo = load_zoo(cnn_path)
    path = save_zoo(tmp_path / "imported.safetensors", zoo.spec, zoo.params,
                    provenance={"importer": "cnn-zoo"})
    code, stdout, err = run_cli(["merge", f"{path}:0", f"{path}:1", "--out",
                                 tmp_path / "m.safetensors", "--device", "cpu"], capsys)
    assert code == 0, err
    assert stdout.splitlines()[1] == (f"quality not measured: {path} names no evaluation "
                                      "images: pass --data SOURCE (cifar10-gs:DIR for the "
                                      "Small CNN Zoo)")
    code, _, err = run_cli(["eval", f"{path}:0", "--device", "cpu"], capsys)
    assert code == 2 and "pass --data SOURCE" in err


@pytest.mark.parametrize(("args", "message"), [
    (["{PTH}"], "records no evaluation data: pass --data SOURCE"),
    (["{PTH}", "--data", "nope"], "unknown data source 'nope'"),
    (["{PTH}", "--data", "mnist-embedded", "--input-transform", "x/255"],
     "--input-transform must be one of none, x*2-1; got 'x/255'"),
    (["{PTH}", "--data", "mnist-embedded", "--image", "3"], "--image is for INRs"),
    (["{ZOO}:7"], "index 7 is out of range"),
    (["{ZOO}"], "is a zoo; pick one network"),
    (["{DIR}/missing.safetensors"], "network file not found"),
])
def test_eval_errors(cnn_path, tmp_path, capsys, args, message):
    spec = load_zoo(cnn_path).spec
    pth = tmp_path / "n.pth"
    torch.save(spec.module(spec.init_params(1)[0]).state_dict(), pth)
    values = {"PTH": pth, "ZOO": cnn_path, "DIR": tmp_path}
    argv = ["eval", *(a.format(**values) for a in args), "--device", "cpu"]
    if "{PTH}" in args:
        argv += ["--spec", str(cnn_path)]
    code, stdout, err = run_cli(argv, capsys)
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err and stdout == ""
