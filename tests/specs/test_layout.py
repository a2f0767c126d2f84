"""Flat layout, state dicts, (un)flattening, serialization and user errors of the specs."""

from __future__ import annotations

import math

import pytest
import torch

from symmerge.errors import SymmergeError
from symmerge.specs import CNNSpec, MLPSpec, SirenSpec, spec_from_dict, spec_from_json
from tests.devices import assert_on
from tests.symmetry.nets import SPECS, random_params, spec_id


@pytest.mark.parametrize(
    ("spec", "count"),
    [(SirenSpec(), 1185), (CNNSpec(), 4970), (MLPSpec(layout=(2, 32, 32, 1)), 1185)],
    ids=["siren", "cnn", "mlp"],
)
def test_published_parameter_counts(spec, count):
    assert spec.num_params == count
    assert spec.offsets[-1] == sum(math.prod(shape) for _, shape in spec.param_shapes)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_flat_order_is_state_dict_order(spec, dtype):
    """Per layer: weight row-major, then bias; keys seq.{l}.weight / seq.{l}.bias."""
    flat = torch.arange(spec.num_params, dtype=dtype)
    sd = spec.to_state_dict(flat)
    assert list(sd) == [k for k, _ in spec.param_shapes]
    offset = 0
    for layer in range(spec.num_layers):
        w, b = sd[f"seq.{layer}.weight"], sd[f"seq.{layer}.bias"]
        assert tuple(w.shape) == spec.weight_shape(layer)
        assert tuple(b.shape) == (spec.layout[layer + 1],)
        # weight[i, j, *k] sits at offset + ravel_multi_index((i, j, *k))
        idx = torch.arange(w.numel(), dtype=dtype).reshape(w.shape) + offset
        assert torch.equal(w, idx)
        offset += w.numel()
        assert torch.equal(b, torch.arange(b.numel(), dtype=dtype) + offset)
        offset += b.numel()
    assert offset == spec.num_params


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_state_dict_and_module_round_trip_is_exact(spec, dtype, gen, device):
    params = random_params(spec, 1, dtype=dtype, generator=gen)[0].to(device)
    back = spec.from_state_dict(spec.to_state_dict(params))
    assert back.dtype == dtype and torch.equal(back, params)
    module = spec.module(params)
    assert_on((back, list(module.parameters())), device)
    assert list(module.state_dict()) == [k for k, _ in spec.param_shapes]
    assert torch.equal(spec.from_module(module), params)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_unflatten_flatten_round_trip(spec, dtype, gen, device):
    params = random_params(spec, 6, dtype=dtype, generator=gen).reshape(2, 3, -1).to(device)
    ws, bs = spec.unflatten(params)
    assert len(ws) == len(bs) == spec.num_layers
    for layer, (w, b) in enumerate(zip(ws, bs, strict=True)):
        assert tuple(w.shape) == (2, 3, *spec.weight_shape(layer))
        assert tuple(b.shape) == (2, 3, *spec.bias_shape(layer))
    assert torch.equal(spec.flatten(ws, bs), params)
    # row b of a batch unflattens to the state dict of network b
    sd = spec.to_state_dict(params[1, 2])
    assert all(torch.equal(w[1, 2], sd[f"seq.{i}.weight"]) for i, w in enumerate(ws))


def test_bad_parameter_shapes_raise(gen):
    spec = MLPSpec(layout=(2, 4, 1))
    good = spec.init_params(2, generator=gen)
    with pytest.raises(SymmergeError, match="parameters"):
        spec.unflatten(good[:, :-1])
    with pytest.raises(SymmergeError):
        spec.check_params(torch.tensor(1.0))
    with pytest.raises(SymmergeError, match="tensor"):
        spec.check_params(good.tolist())  # type: ignore[arg-type]
    with pytest.raises(SymmergeError, match="NaN"):
        spec.check_params(torch.full_like(good, float("nan")))
    with pytest.raises(SymmergeError, match="one network"):
        spec.to_state_dict(good)
    ws, bs = spec.unflatten(good)
    with pytest.raises(SymmergeError, match="expected 2"):
        spec.flatten(ws[:1], bs[:1])
    with pytest.raises(SymmergeError, match="layer 0"):
        spec.flatten([ws[0][:, :3], ws[1]], bs)


def test_bad_state_dicts_raise(gen):
    spec = SirenSpec(layout=(2, 4, 1))
    sd = spec.to_state_dict(spec.init_params(1, generator=gen)[0])
    missing = {k: v for k, v in sd.items() if k != "seq.1.bias"}
    with pytest.raises(SymmergeError, match="missing keys"):
        spec.from_state_dict(missing)
    with pytest.raises(SymmergeError, match="unexpected keys"):
        spec.from_state_dict({**sd, "seq.2.weight": torch.zeros(1)})
    with pytest.raises(SymmergeError, match="shape"):
        spec.from_state_dict({**sd, "seq.0.weight": sd["seq.0.weight"].T})
    with pytest.raises(SymmergeError, match=r"'seq.1.bias' is torch.complex64 \(complex\)"):
        spec.from_state_dict({**sd, "seq.1.bias": sd["seq.1.bias"].to(torch.complex64)})


def test_bad_inputs_raise(gen):
    mlp, siren, cnn = MLPSpec(layout=(3, 4, 1)), SirenSpec(layout=(2, 4, 1)), CNNSpec()
    with pytest.raises(SymmergeError, match="inputs"):
        mlp.forward(mlp.init_params(2, generator=gen), torch.zeros(5, 2))
    with pytest.raises(SymmergeError, match="inputs"):
        siren.forward(siren.init_params(2, generator=gen), torch.zeros(3, 5, 2))
    p = cnn.init_params(2, generator=gen)
    with pytest.raises(SymmergeError, match="CNN inputs"):
        cnn.forward(p, torch.zeros(4, 3, 16, 16))  # wrong channel count
    with pytest.raises(SymmergeError, match="CNN inputs"):
        cnn.forward(p, torch.zeros(3, 4, 1, 16, 16))  # per-network batch of 3 for 2 nets
    small = cnn.min_input_size() - 1
    with pytest.raises(SymmergeError, match="CNN inputs"):
        cnn.forward(p, torch.zeros(4, 1, small, small))


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: MLPSpec(layout=(2,)), "at least 2"),
        (lambda: MLPSpec(layout=(2, 0, 1)), "positive"),
        (lambda: MLPSpec(layout=(2, 4, 1), activation="sine"), "activation"),
        (lambda: CNNSpec(layout=(1, 10)), "conv layer"),
        (lambda: CNNSpec(kernel_size=0), "positive"),
        (lambda: SirenSpec(w0=0.0), "w0"),
        (lambda: SirenSpec(w0=float("inf")), "w0 must be positive and finite"),
        (lambda: SirenSpec(output_offset=float("nan")), "output_offset must be finite"),
        (lambda: MLPSpec(layout=(2, 4.7, 1)), "integers"),
        (lambda: MLPSpec(layout=(2, True, 1)), "integers"),
        (lambda: SirenSpec(activation="relu"), "activation"),
    ],
)
def test_invalid_specs_raise(factory, match):
    with pytest.raises(SymmergeError, match=match):
        factory()


@pytest.mark.parametrize("spec", [*SPECS, SirenSpec(), CNNSpec(activation="tanh")], ids=spec_id)
def test_spec_json_round_trip(spec):
    back = spec_from_json(spec.to_json())
    assert back == spec and type(back) is type(spec)
    assert spec_from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["family"] == spec.family


def test_spec_serialization_errors():
    with pytest.raises(SymmergeError, match="unknown architecture family 'resnet'"):
        spec_from_dict({"family": "resnet", "layout": [1, 2]})
    with pytest.raises(SymmergeError, match="unknown architecture family"):
        spec_from_dict({"layout": [1, 2]})
    with pytest.raises(SymmergeError, match="unknown siren spec fields"):
        spec_from_dict({"family": "siren", "layout": [2, 4, 1], "depth": 3})
    with pytest.raises(SymmergeError, match="JSON"):
        spec_from_json("{not json")
    with pytest.raises(SymmergeError, match="activation"):
        spec_from_json('{"family": "cnn", "activation": "sine"}')


def test_cnn_json_of_the_zoo_layout_is_unchanged():
    """Per-layer options and dense layers stay out of a Small-CNN-Zoo spec's JSON, so zoo
    files and run directories written before them keep their spec text."""
    spec = CNNSpec()
    assert spec.to_json() == ('{"activation": "relu", "family": "cnn", "kernel_size": 3, '
                              '"layout": [1, 16, 16, 16, 10], "stride": 2}')
    assert spec.describe() == "cnn [1, 16, 16, 16, 10] (activation=relu, kernel_size=3, stride=2)"
    assert spec_from_json(spec.to_json()) == spec


def test_cnn_per_layer_options():
    # one value per convolution, stored as one integer when they agree
    assert CNNSpec(kernel_size=(3, 3, 3), stride=[2, 2, 2], padding=(0, 0, 0)) == CNNSpec()
    spec = CNNSpec((3, 4, 5, 6, 2), "tanh", kernel_size=(5, 1), stride=(2, 1), padding=(2, 0),
                   dense_layers=2)
    assert spec.num_convs == 2 and spec.kernel_sizes == (5, 1) and spec.paddings == (2, 0)
    assert [spec.kernel_shape(layer) for layer in range(4)] == [(5, 5), (1, 1), (), ()]
    assert spec.weight_shape(2) == (6, 5) and spec.tf_shape(1) == (1, 1, 4, 5)
    d = spec.to_dict()
    assert d["kernel_size"] == [5, 1] and d["padding"] == [2, 0] and d["dense_layers"] == 2
    back = spec_from_json(spec.to_json())
    assert back == spec and hash(back) == hash(spec)
    assert "dense_layers=2" in spec.describe() and "padding=[2, 0]" in spec.describe()
    # 1 pixel <- 1x1 conv, stride 1 <- 5x5 conv with padding 2, stride 2: 1 pixel
    assert spec.min_input_size() == 1
    assert CNNSpec((1, 4, 4, 2), kernel_size=(3, 5), stride=(2, 1), padding=(0, 1)
                   ).min_input_size() == 7  # 1 <- 3 (5x5, pad 1) <- 7 (3x3, stride 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kernel_size": (3, 3)}, r"kernel_size must be one integer or one per convolution \(3\)"),
        ({"stride": (2, 0, 2)}, "stride must be positive"),
        ({"padding": -1}, "padding must be non-negative"),
        ({"padding": 1.5}, "padding must be integers"),
        ({"dense_layers": 0}, "dense_layers must be a positive integer"),
        ({"dense_layers": 4}, "at least one conv layer before its 4 dense"),
    ],
)
def test_cnn_invalid_per_layer_options(kwargs, match):
    with pytest.raises(SymmergeError, match=match):
        CNNSpec(**kwargs)
