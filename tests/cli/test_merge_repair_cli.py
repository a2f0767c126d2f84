"""``symmerge merge --repair``: the repaired merge is the library's REPAIR of the merge, on
the training side of the merge's evaluation data (a zoo's own, a merged file's record or
``--data``), and clear errors (named by the command's flags)."""

from __future__ import annotations

import json

import torch
from safetensors import safe_open

from symmerge.evaluation import evaluation_data
from symmerge.merge import load_network, merge, repair, save_network
from symmerge.merge.repair import repair_inputs
from symmerge.zoo import load_zoo
from tests.cli._util import run_cli


def _provenance(path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["provenance"])


def test_repaired_merge_of_zoo_cnns(assets, tmp_path, capsys):
    refs = [f"{assets.cnn_zoo}:{i}" for i in (0, 3)]
    out = tmp_path / "r.safetensors"
    code, stdout, err = run_cli(["merge", *refs, "--method", "wm", "--repair",
                                 "--repair-images", "120", "--out", out], capsys)
    assert code == 0, err
    assert "repaired on 120 of the 4000 training images of mnist-embedded" in stdout
    assert _provenance(out)["repair"]["images"].startswith("120 of the 4000 training images")
    # the library's steps, one by one
    zoo = load_zoo(assets.cnn_zoo)
    res = merge(zoo.get_params([0, 3]).float(), zoo.spec, "wm")
    settings = evaluation_data(load_network(refs[0])).settings
    x, _ = repair_inputs(zoo.spec, settings, count=120)
    want = repair(zoo.spec, res.params, res.aligned, x, weights=res.weights)
    got = load_network(out).params
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, res.params, rtol=1e-3, atol=1e-4)  # repair changed it
    # --data names the zoo's own source here: the same images, the same network
    again = tmp_path / "again.safetensors"
    code, _, err = run_cli(["merge", *refs, "--method", "wm", "--repair", "--repair-images",
                            "120", "--data", "mnist-embedded", "--out", again], capsys)
    assert code == 0, err
    torch.testing.assert_close(load_network(again).params, got)


def test_repair_needs_data_and_a_supported_family(assets, tmp_path, capsys):
    zoo = load_zoo(assets.cnn_zoo)
    files = [save_network(tmp_path / f"n{i}.safetensors", zoo.spec, zoo.get_params([i])[0])
             for i in range(2)]
    out = tmp_path / "o.safetensors"
    code, _, err = run_cli(["merge", *files, "--repair", "--out", out], capsys)
    assert code == 2 and "error: --repair needs images: " in err and "pass --data SOURCE" in err
    assert err.count("error") == 1 and not out.exists()
    code, _, err = run_cli(["merge", *files, "--repair", "--data", "nosuch", "--out", out],
                           capsys)
    assert code == 2 and "error: unknown data source 'nosuch'" in err and not out.exists()
    code, _, err = run_cli(["merge", f"{assets.inr_zoo}:0", f"{assets.inr_zoo}:1", "--repair",
                            "--out", out], capsys)
    assert code == 2 and "repair supports MLPs and CNNs" in err and not out.exists()
    code, _, err = run_cli(["merge", *files, "--repair", "--repair-images", "1", "--out", out],
                           capsys)
    assert code == 2 and "--repair-images" in err
    # files with data: pixels as the source gives them (the tiny zoo's CNNs take them so)
    code, stdout, err = run_cli(["merge", *files, "--repair", "--data", "mnist-embedded",
                                 "--repair-images", "50", "--out", out], capsys)
    assert code == 0, err
    assert "repaired on 50 of the 4000 training images of mnist-embedded" in stdout
    # the output records its data: merging it again finds the same images without --data
    code, stdout, err = run_cli(["merge", out, files[0], "--repair", "--repair-images", "50",
                                 "--out", tmp_path / "again.safetensors"], capsys)
    assert code == 0, err
    assert "repaired on 50 of the 4000 training images of mnist-embedded" in stdout


def test_repair_refuses_bias_free_hidden_layers_before_merging(tmp_path, capsys):
    """REPAIR gives hidden layers biases: a user layout without them is refused at once
    (not after merging, with advice that does not apply), and nothing is written."""
    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, bias=False), torch.nn.ReLU(),
                                torch.nn.Conv2d(4, 4, 3), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 10)) for _ in range(2)]
    files = []
    for i, n in enumerate(nets):
        torch.save(n.state_dict(), tmp_path / f"n{i}.pth")
        files.append(tmp_path / f"n{i}.pth")
    out = tmp_path / "o.pth"
    code, _, err = run_cli(["merge", *files, "--activation", "relu", "--repair", "--data",
                            "mnist-embedded", "--out", out], capsys)
    assert code == 2 and "repair sets the biases of the hidden layers" in err
    assert "layer(s) 0 of" in err and err.count("error") == 1 and not out.exists()
    code, _, err = run_cli(["merge", *files, "--activation", "relu", "--out", out], capsys)
    assert code == 0, err  # without repair the zero biases stay zero
