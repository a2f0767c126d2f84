"""Plain ``nn.Sequential`` state dicts: inferred architectures, merges written back in the
user's own keys (loaded strictly into the user's module), and clear errors for layouts
that are not supported."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from symmerge.align import MatchOptions
from symmerge.errors import SymmergeError
from symmerge.merge import (
    ArchitectureHints,
    StateKeys,
    infer_architecture,
    load_network,
    match_architecture,
    merge,
    output_keys,
    save_network,
)
from symmerge.merge.io import stack_networks
from symmerge.specs import CNNSpec, MLPSpec, SirenSpec
from symmerge.symmetry import sample_group_elements


class Sine(nn.Module):
    """``sin(w0 x)``: a SIREN's activation, as a user writes it."""

    def __init__(self, w0: float) -> None:
        super().__init__()
        self.w0 = w0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * x)


class Wrapped(nn.Module):
    """A Sequential under an attribute: keys ``net.<i>.weight``."""

    def __init__(self, net: nn.Sequential) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _act(name: str) -> nn.Module:
    return {"relu": nn.ReLU(), "tanh": nn.Tanh(), "sine": Sine(3.0)}[name]


def _mlp(widths, act: str, *, flatten: bool = False, bias: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()] if flatten else []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b, bias=bias or i == len(widths) - 2))
        if i < len(widths) - 2:
            layers.append(_act(act))
    return nn.Sequential(*layers)


def _cnn(channels, kernels, dense, act: str, *, stride=1, padding=0,
         bias: bool = True) -> nn.Sequential:
    strides = stride if isinstance(stride, tuple) else (stride,) * len(kernels)
    paddings = padding if isinstance(padding, tuple) else (padding,) * len(kernels)
    layers: list[nn.Module] = []
    for a, b, k, s, p in zip(channels[:-1], channels[1:], kernels, strides, paddings,
                             strict=True):
        layers += [nn.Conv2d(a, b, k, stride=s, padding=p, bias=bias), _act(act)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    widths = [channels[-1], *dense]
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(_act(act))
    return nn.Sequential(*layers)


# (name, module factory, hints, input shape, weight-matching restarts). The descent from
# the identity can stall on exact copies of deeper networks (METHOD.md 6.2, as in
# tests/align/test_matching.py): the deeper cases take restarts.
CASES = [
    ("mlp-relu-2", lambda: _mlp([5, 16, 3], "relu"), ArchitectureHints("relu"), (5,), 0),
    ("mlp-tanh-4", lambda: _mlp([6, 12, 9, 7, 2], "tanh", flatten=True),
     ArchitectureHints("tanh"), (2, 3), 4),
    ("mlp-sine-3", lambda: _mlp([2, 20, 11, 1], "sine"), ArchitectureHints("sine", w0=3.0),
     (2,), 0),
    ("mlp-relu-nobias", lambda: Wrapped(_mlp([4, 10, 8, 3], "relu", bias=False)),
     ArchitectureHints("relu"), (4,), 4),
    ("cnn-relu-1", lambda: _cnn([3, 8], [3], [5], "relu"), ArchitectureHints("relu"),
     (3, 9, 9), 0),
    ("cnn-tanh-3", lambda: _cnn([1, 6, 8, 4], [5, 3, 1], [10, 3], "tanh", stride=(1, 2, 1),
                                padding=(2, 0, 0)),
     ArchitectureHints("tanh", stride=(1, 2, 1), padding=(2, 0, 0)), (1, 12, 12), 16),
    ("cnn-relu-2-nobias", lambda: Wrapped(_cnn([2, 7, 5], [3, 3], [6, 6, 4], "relu", stride=2,
                                               padding=1, bias=False)),
     ArchitectureHints("relu", stride=2, padding=1), (2, 11, 11), 16),
]


def _case(name):
    return next(c for c in CASES if c[0] == name)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _transformed_copy(module: nn.Module, hints: ArchitectureHints, seed: int) -> nn.Module:
    """The module with its hidden neurons randomly permuted, sign-flipped (tanh, sine) or
    positively rescaled (relu): the same function, other weights."""
    state = module.state_dict()
    spec, keys = infer_architecture(state, hints)
    params = keys.read(spec, state)
    g = sample_group_elements(spec, 1, generator=torch.Generator().manual_seed(seed),
                              scale_range=(0.25, 4.0))
    twin = _clone(module)
    twin.load_state_dict(keys.write(spec, g.apply(spec, params)), strict=True)
    return twin


def _clone(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module)


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_inferred_spec_computes_the_modules_function(case):
    _, factory, hints, shape, _ = _case(case)
    torch.manual_seed(0)
    module = factory()
    state = module.state_dict()
    spec, keys = infer_architecture(state, hints)
    assert isinstance(spec, CNNSpec if case.startswith("cnn") else
                      SirenSpec if "sine" in case else MLPSpec)
    params = keys.read(spec, state)
    x = torch.randn(7, *shape, generator=torch.Generator().manual_seed(1))
    flat_x = x.flatten(1) if not case.startswith("cnn") else x
    with torch.no_grad():
        assert _relative(spec.forward(params, flat_x), module(x)) <= 1e-5
    # written back: the user's keys, shapes and dtypes, bias-less layers left out
    back = keys.write(spec, params)
    assert list(back) == [k for k in keys.keys if k is not None]
    assert {k: (v.shape, v.dtype) for k, v in back.items()} == {
        k: (v.shape, v.dtype) for k, v in state.items()}


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_wm_merge_with_a_transformed_copy_keeps_the_function(case, tmp_path, device):
    """Merged with a permuted (and sign-flipped or rescaled) copy of itself, a user's
    network comes back as itself: the file loads strictly into the user's module and
    computes the original function; the plain average does not."""
    _, factory, hints, shape, restarts = _case(case)
    torch.manual_seed(0)
    module = factory().eval()
    twin = _transformed_copy(module, hints, seed=3)
    x = torch.randn(16, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = module(x)
        assert _relative(twin(x), expected) <= 1e-5  # the copy is exact
    torch.save(module.state_dict(), tmp_path / "a.pth")
    save_file(twin.state_dict(), str(tmp_path / "b.safetensors"))  # no metadata of ours
    nets = [load_network(tmp_path / "a.pth", hints=hints),
            load_network(tmp_path / "b.safetensors", hints=hints)]
    spec, params = stack_networks(nets)
    results = {}
    for method in ("wm", "naive"):
        merged = merge(params.to(device), spec, method, device=device,
                       matching=MatchOptions(restarts=restarts)).params
        for out in (tmp_path / f"{method}.safetensors", tmp_path / f"{method}.pth"):
            save_network(out, spec, merged, keys=output_keys(nets))
            fresh = _clone(module)
            state = (load_file(str(out)) if out.suffix == ".safetensors"
                     else torch.load(out, weights_only=True))
            fresh.load_state_dict(state, strict=True)
            with torch.no_grad():
                results[method, out.suffix] = _relative(fresh(x), expected)
    assert results["wm", ".safetensors"] <= 1e-5 and results["wm", ".pth"] <= 1e-5
    assert results["naive", ".safetensors"] > 1e-2  # sensitivity: alignment is needed


def test_saved_user_layout_reads_back_with_its_keys(tmp_path):
    torch.manual_seed(0)
    module = _cnn([1, 4, 6], [3, 3], [5], "tanh", stride=2).to(torch.float64)
    hints = ArchitectureHints("tanh", stride=2)
    torch.save(module.state_dict(), tmp_path / "a.pth")
    net = load_network(tmp_path / "a.pth", hints=hints)
    assert net.keys is not None and not net.inferred
    assert net.keys.dtypes == (torch.float64,) * 6
    save_network(tmp_path / "m.safetensors", net.spec, net.params, keys=net.keys)
    again = load_network(tmp_path / "m.safetensors")  # spec and keys from the metadata
    assert again.spec == net.spec and again.keys == net.keys
    assert torch.equal(again.params, net.params)
    assert all(v.dtype == torch.float64 for v in load_file(str(tmp_path / "m.safetensors"))
               .values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        net.keys.keys = ()  # type: ignore[misc]


def test_a_given_spec_maps_a_sequential_state_dict(tmp_path):
    """--spec with a user's keys: the layers are matched in order, their shapes checked."""
    torch.manual_seed(0)
    module = _cnn([1, 6, 6], [3, 3], [10], "relu", stride=3)
    spec = CNNSpec((1, 6, 6, 10), "relu", stride=3)
    keys = match_architecture(module.state_dict(), spec)
    assert keys.keys[0] == "0.weight" and keys.keys[-1] == "6.bias"
    with pytest.raises(SymmergeError, match="does not match"):
        match_architecture(module.state_dict(), CNNSpec((1, 6, 6, 10), "relu", kernel_size=5))
    torch.save(module.state_dict(), tmp_path / "a.pth")
    assert load_network(tmp_path / "a.pth", spec).spec == spec
    # the same network described by hints is the same spec as the zoo's
    assert load_network(tmp_path / "a.pth", hints=ArchitectureHints("relu", stride=3)
                        ).spec == spec
    with pytest.raises(SymmergeError, match="either spec or the architecture hints"):
        load_network(tmp_path / "a.pth", spec, ArchitectureHints("relu"))


def test_a_dropped_bias_must_stay_zero():
    spec, keys = infer_architecture(_mlp([3, 4, 2], "relu", bias=False).state_dict(),
                                    ArchitectureHints("relu"))
    assert keys.keys[1] is None
    params = spec.init_params(1, generator=torch.Generator().manual_seed(0))[0]
    with pytest.raises(SymmergeError, match="non-zero bias seq.0.bias where the inputs' layer "
                                            "has none"):
        keys.write(spec, params)


def test_state_keys_json_round_trip_and_errors():
    keys = StateKeys(("a.weight", None, "b.weight", "b.bias"),
                     (torch.float16, torch.float16, torch.bfloat16, torch.float64))
    assert StateKeys.from_json(keys.to_json()) == keys
    for bad in ("{", '{"keys": ["a"], "dtypes": ["int64"]}', '{"keys": [1], "dtypes": '
                '["float32"]}', '{"keys": ["a"], "dtypes": ["nn"]}'):
        with pytest.raises(SymmergeError, match="state keys"):
            StateKeys.from_json(bad)
    with pytest.raises(SymmergeError, match="repeat"):
        StateKeys(("a", "a"), (torch.float32,) * 2)


def _state(*layers: nn.Module) -> dict[str, torch.Tensor]:
    return nn.Sequential(*layers).state_dict()


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


UNSUPPORTED = [
    ("batchnorm", lambda: _state(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)),
     "BatchNorm"),
    ("layernorm", lambda: _state(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2)),
     "normalization layer"),
    ("flatten", lambda: _state(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(),
                               nn.Linear(4 * 6 * 6, 10)),
     r"takes 144 = 4 channels x 36 positions: a flattened feature map"),
    ("widths", lambda: {**_state(nn.Linear(4, 8)), "2.weight": torch.zeros(2, 7),
                        "2.bias": torch.zeros(2)},
     "linear layer 2 takes 7 inputs, the previous layer gives 8"),
    ("conv-after-linear", lambda: _state(nn.Linear(4, 4), nn.ReLU(), nn.Conv2d(4, 4, 1)),
     "conv layer 2 comes after linear layer 0"),
    ("grouped", lambda: _state(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=4),
                               nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)),
     r"grouped convolution \(groups=4\)"),
    ("residual", lambda: _state(nn.Conv2d(1, 4, 3), Block(), nn.AdaptiveAvgPool2d(1),
                                nn.Flatten(), nn.Linear(4, 2)),
     "nested modules"),
    ("conv1d", lambda: _state(nn.Conv1d(1, 4, 3), nn.ReLU(), nn.Linear(4, 2)), "a Conv1d"),
    ("non-square", lambda: _state(nn.Conv2d(1, 4, (3, 5)), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(4, 2)), "non-square kernel 3x5"),
    ("no-linear", lambda: _state(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3)),
     "no Linear layer after the convolutions"),
    ("two-sequentials", lambda: {"features.0.weight": torch.zeros(4, 1, 3, 3),
                                 "classifier.0.weight": torch.zeros(2, 4)},
     "several prefixes"),
]


@pytest.mark.parametrize(("name", "factory", "match"), UNSUPPORTED,
                         ids=[u[0] for u in UNSUPPORTED])
def test_unsupported_layouts_say_what_was_found(name, factory, match):
    with pytest.raises(SymmergeError, match=match) as info:
        infer_architecture(factory(), ArchitectureHints("relu"))
    assert "supported: one nn.Sequential" in str(info.value)


def test_hints_that_do_not_fit_the_network():
    mlp = _mlp([3, 4, 2], "relu").state_dict()
    cnn = _cnn([1, 4], [3], [2], "relu").state_dict()
    with pytest.raises(SymmergeError, match="stride: for convolutions only"):
        infer_architecture(mlp, ArchitectureHints("relu", stride=2))
    with pytest.raises(SymmergeError, match="'sine' is supported for MLPs only"):
        infer_architecture(cnn, ArchitectureHints("sine"))
    with pytest.raises(SymmergeError, match=r"stride must be one integer or one per convolution"):
        infer_architecture(cnn, ArchitectureHints("relu", stride=(1, 2)))
    with pytest.raises(SymmergeError, match="w0 is the frequency of sine networks"):
        ArchitectureHints("relu", w0=3.0)
    with pytest.raises(SymmergeError, match="activation must be one of"):
        ArchitectureHints("gelu")
    with pytest.raises(SymmergeError, match="w0 must be positive"):
        infer_architecture(mlp, ArchitectureHints("sine", w0=-1.0))
    # the sine default is SirenSpec's w0, without the zoo's output offset
    spec, _ = infer_architecture(mlp, ArchitectureHints("sine"))
    assert spec == SirenSpec((3, 4, 2), w0=SirenSpec().w0, output_offset=0.0)
