"""``symmerge merge`` on the user's own ``nn.Sequential`` state dicts: the output loads
into the user's module, unsupported layouts and bad ``ZOO:INDEX`` references are one clear
error each, and nothing is written."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from symmerge.merge import ArchitectureHints, infer_architecture, load_network
from symmerge.symmetry import sample_group_elements
from symmerge.zoo import load_zoo
from tests.cli._util import run_cli


def _mlp() -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 12),
                         nn.ReLU(), nn.Linear(12, 3))


def _zoo_like_cnn() -> nn.Sequential:
    """The architecture of the test CNN zoo (tests/assets.py), as a user writes it."""
    return nn.Sequential(nn.Conv2d(1, 6, 3, stride=3), nn.ReLU(), nn.Conv2d(6, 6, 3, stride=3),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 10))


def _permuted_copy(module: nn.Module, activation: str, seed: int) -> dict[str, torch.Tensor]:
    """The state dict of ``module`` with permuted, positively rescaled hidden neurons."""
    state = module.state_dict()
    spec, keys = infer_architecture(state, ArchitectureHints(activation))
    g = sample_group_elements(spec, 1, generator=torch.Generator().manual_seed(seed),
                              scale_range=(0.25, 4.0))
    return keys.write(spec, g.apply(spec, keys.read(spec, state)))


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture
def mlp_files(tmp_path):
    torch.manual_seed(0)
    module = _mlp().eval()
    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.save(module.state_dict(), a)
    torch.save(_permuted_copy(module, "relu", 1), b)
    return module, a, b


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_merge_of_user_mlps_loads_into_their_module(mlp_files, tmp_path, capsys, suffix):
    """Default method (wm): the permuted copy is aligned back; the output has the user's
    keys and loads strictly into the user's module."""
    module, a, b = mlp_files
    out = tmp_path / f"merged{suffix}"
    code, stdout, err = run_cli(["merge", a, b, "--activation", "relu", "--out", out], capsys)
    assert code == 0, err
    assert "with wm" in stdout and "mlp [6, 16, 12, 3]" in stdout and "no architecture" not in err
    state = load_file(str(out)) if suffix == ".safetensors" else torch.load(out,
                                                                           weights_only=True)
    assert sorted(state) == sorted(module.state_dict())  # 1.weight, 1.bias, 3.weight, ...
    fresh = _mlp()
    fresh.load_state_dict(state, strict=True)
    x = torch.randn(32, 2, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert _relative(fresh(x), module(x)) <= 1e-5
    if suffix == ".safetensors":  # our metadata rides along: symmerge reads it back alone
        with safe_open(str(out), framework="pt") as f:
            assert json.loads(f.metadata()["provenance"])["method"] == "wm"
        assert load_network(out).keys == load_network(a, hints=ArchitectureHints("relu")).keys
    # sensitivity: the plain average of the permuted copy is another function
    naive = tmp_path / f"naive{suffix}"
    code, _, err = run_cli(["merge", a, b, "--activation", "relu", "--method", "naive",
                            "--out", naive], capsys)
    assert code == 0, err
    fresh.load_state_dict(load_file(str(naive)) if suffix == ".safetensors"
                          else torch.load(naive, weights_only=True))
    with torch.no_grad():
        assert _relative(fresh(x), module(x)) > 1e-2


def test_a_user_cnn_merges_with_a_zoo_network_of_its_architecture(assets, tmp_path, capsys):
    """A user's CNN with the zoo's stride is the zoo's spec: it merges with ZOO:INDEX, and
    the output takes the user's layout; --spec reads the same file the same way."""
    zoo = load_zoo(assets.cnn_zoo)
    user = _zoo_like_cnn()
    spec, keys = infer_architecture(user.state_dict(), ArchitectureHints("relu", stride=3))
    assert spec == zoo.spec
    user.load_state_dict(keys.write(spec, zoo.params[2]))
    save_file(user.state_dict(), str(tmp_path / "user.safetensors"))
    out = tmp_path / "m.safetensors"
    code, _, err = run_cli(["merge", f"{assets.cnn_zoo}:2", tmp_path / "user.safetensors",
                            "--activation", "relu", "--stride", "3", "--out", out], capsys)
    assert code == 0, err
    fresh = _zoo_like_cnn()
    fresh.load_state_dict(load_file(str(out)), strict=True)
    x = spec.probe_inputs(generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert _relative(fresh(x), user(x)) <= 1e-5  # a network merged with itself
    code, _, err = run_cli(["merge", f"{assets.cnn_zoo}:2", tmp_path / "user.safetensors",
                            "--spec", assets.cnn_zoo, "--out", out], capsys)
    assert code == 0, err
    # the autoencoder trained on that zoo applies; on another architecture it is refused
    code, _, err = run_cli(["merge", f"{assets.cnn_zoo}:2", tmp_path / "user.safetensors",
                            "--activation", "relu", "--stride", "3", "--method", "ae-lift",
                            "--run", assets.cnn_run, "--out", out], capsys)
    assert code == 0, err
    torch.save(_mlp().state_dict(), tmp_path / "mlp.pth")
    code, _, err = run_cli(["merge", tmp_path / "mlp.pth", tmp_path / "mlp.pth", "--activation",
                            "relu", "--method", "ae-lift", "--run", assets.cnn_run, "--out",
                            tmp_path / "no.safetensors"], capsys)
    assert code == 2 and "was trained on" in err and err.count("error: ") == 1
    assert not (tmp_path / "no.safetensors").exists()


def _sequential(*layers: nn.Module) -> dict[str, torch.Tensor]:
    return nn.Sequential(*layers).state_dict()


UNSUPPORTED = {
    "batchnorm": (lambda: _sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)),
                  "BatchNorm"),
    "flatten": (lambda: _sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(),
                                    nn.Linear(144, 2)), "flattened feature map"),
    "widths": (lambda: {**_sequential(nn.Linear(4, 8)), "2.weight": torch.zeros(2, 7),
                        "2.bias": torch.zeros(2)}, "takes 7 inputs, the previous layer gives 8"),
    "conv-after-linear": (lambda: _sequential(nn.Linear(4, 4), nn.ReLU(), nn.Conv2d(4, 4, 1)),
                          "comes after linear layer"),
    "grouped": (lambda: _sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=2),
                                    nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                    nn.Linear(8, 2)), "grouped convolution (groups=2)"),
}


@pytest.mark.parametrize("kind", list(UNSUPPORTED))
def test_unsupported_layouts_are_one_clear_error(tmp_path, capsys, kind):
    factory, fragment = UNSUPPORTED[kind]
    path = tmp_path / f"{kind}.pth"
    torch.save(factory(), path)
    out = tmp_path / "m.safetensors"
    code, _, err = run_cli(["merge", path, path, "--activation", "relu", "--out", out], capsys)
    assert code == 2 and "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and fragment in errors[0] and str(path) in errors[0], err
    assert "supported: one nn.Sequential" in errors[0]
    assert not out.exists()


@pytest.mark.parametrize(("extra", "fragment"), [
    ([], "pass --activation (relu, tanh or sine) for an nn.Sequential MLP or CNN, or --spec"),
    (["--activation", "gelu"], "--activation must be one of"),
    (["--activation", "relu", "--stride", "2"], "--stride: for convolutions only"),
    (["--activation", "relu", "--w0", "3"], "--w0 is the frequency of sine networks"),
    (["--w0", "3"], "--w0: only with --activation"),
    (["--activation", "sine", "--w0", "nan"], "--w0 must be positive and finite"),
    (["--activation", "relu", "--spec", '{"family": "mlp", "layout": [6, 16, 12, 3]}'],
     "give either --spec or the architecture hints"),
])
def test_hint_errors_name_the_flags(mlp_files, tmp_path, capsys, extra, fragment):
    _, a, b = mlp_files
    out = tmp_path / "m.safetensors"
    code, _, err = run_cli(["merge", a, b, *extra, "--out", out], capsys)
    assert code == 2 and fragment in err and err.count("error: ") == 1, err
    assert not out.exists()


def test_cnn_stride_and_padding_lists(tmp_path, capsys):
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 5, 3, stride=2),
                           nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 2))
    torch.save(module.state_dict(), tmp_path / "a.pth")
    out = tmp_path / "m.safetensors"
    code, stdout, err = run_cli(["merge", tmp_path / "a.pth", tmp_path / "a.pth", "--activation",
                                 "tanh", "--stride", "1,2", "--padding", "1,0", "--out", out],
                                capsys)
    assert code == 0, err
    assert "stride=[1, 2], padding=[1, 0]" in stdout
    code, _, err = run_cli(["merge", tmp_path / "a.pth", tmp_path / "a.pth", "--activation",
                            "tanh", "--stride", "1,2,2", "--out", out], capsys)
    assert code == 2 and "--stride must be one integer or one per convolution (2)" in err
    code, _, err = run_cli(["merge", tmp_path / "a.pth", tmp_path / "a.pth", "--activation",
                            "tanh", "--padding", "x", "--out", out], capsys)
    assert code == 2 and "--padding must be an integer or comma-separated integers" in err


@pytest.mark.parametrize("index", ["-1", "32", "999", "1.5", "abc", "", " "])
def test_bad_zoo_indices_name_the_zoo_size(assets, tmp_path, capsys, index):
    out = tmp_path / "m.safetensors"
    code, _, err = run_cli(["merge", f"{assets.inr_zoo}:0", f"{assets.inr_zoo}:{index}",
                            "--out", out], capsys)
    errors = [ln for ln in err.splitlines() if not ln.startswith("note: ")]
    assert code == 2 and len(errors) == 1 and errors[0].startswith("error: "), err
    assert "the zoo holds 32 networks, pick one of 0 to 31" in errors[0]
    assert not out.exists()
    code, _, err = run_cli(["merge", f"{assets.inr_zoo}:0", f"{assets.inr_zoo}:31",
                            "--out", out], capsys)
    assert code == 0, err


def test_zoo_networks_keep_our_layout_and_pth_names_a_torch_file(assets, tmp_path, capsys):
    zoo = load_zoo(assets.inr_zoo)
    refs = [f"{assets.inr_zoo}:0", f"{assets.inr_zoo}:1"]
    code, _, err = run_cli(["merge", *refs, "--out", tmp_path / "m.safetensors"], capsys)
    assert code == 0, err
    with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as f:
        assert "state_keys" not in f.metadata()
    ours = load_file(str(tmp_path / "m.safetensors"))
    assert sorted(ours) == sorted(k for k, _ in zoo.spec.param_shapes)
    code, _, err = run_cli(["merge", *refs, "--out", tmp_path / "m.pth"], capsys)
    assert code == 0, err
    state = torch.load(tmp_path / "m.pth", weights_only=True)
    assert list(state) == [k for k, _ in zoo.spec.param_shapes]
    assert all(torch.equal(state[k], ours[k]) for k in ours)
    zoo.spec.build_module().load_state_dict(state, strict=True)


def test_a_pth_output_of_another_family_says_how_to_read_it_back(tmp_path, capsys):
    """A torch state dict keeps no architecture: merging zoo-less ReLU MLPs into a .pth
    of our own layout says so, and reading it back needs the activation."""
    from symmerge import MLPSpec
    from symmerge.merge import load_module, save_network

    spec = MLPSpec((6, 5, 3), "relu")
    params = spec.init_params(2, generator=torch.Generator().manual_seed(0))
    files = [save_network(tmp_path / f"n{i}.safetensors", spec, params[i]) for i in range(2)]
    out = tmp_path / "m.pth"
    code, _, err = run_cli(["merge", *files, "--out", out], capsys)
    assert code == 0 and "records no architecture" in err and "--activation" in err
    module = load_module(out, hints=ArchitectureHints(activation="relu"))
    x = torch.randn(4, 6)
    net = load_network(out, hints=ArchitectureHints(activation="relu"))
    torch.testing.assert_close(module(x), spec.forward(net.params, x))


def test_hints_that_contradict_a_recorded_architecture_are_refused(assets, tmp_path, capsys):
    refs = [f"{assets.cnn_zoo}:0", f"{assets.cnn_zoo}:1"]
    act = load_zoo(assets.cnn_zoo).spec.activation
    other = "tanh" if act == "relu" else "relu"
    out = tmp_path / "m.safetensors"
    code, _, err = run_cli(["merge", *refs, "--activation", other, "--out", out], capsys)
    assert code == 2 and f"but the activation given is {other}" in err
    assert "--activation" in err and not out.exists()
    code, _, err = run_cli(["merge", *refs, "--activation", act, "--out", out], capsys)
    assert code == 0, err  # agreeing hints are fine
