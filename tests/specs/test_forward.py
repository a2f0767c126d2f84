"""Batched functional forward passes against the nn.Module twins, rendering, TF order."""

from __future__ import annotations

import math

import pytest
import torch

from symmerge.specs import CNNSpec, MLPSpec, SirenSpec
from symmerge.specs.siren import coordinate_grid
from symmerge.symmetry import tolerance
from tests.devices import assert_on
from tests.symmetry.nets import SPECS, random_params, relative_diff, spec_id

FORWARD_SPECS = [
    *SPECS,
    SirenSpec(),
    MLPSpec(layout=(2, 5, 3), activation="relu"),
    MLPSpec(layout=(2, 5, 3), activation="tanh"),
    CNNSpec(layout=(1, 4, 4, 10), activation="relu"),
    CNNSpec(layout=(1, 4, 4, 10), activation="tanh"),
]


def _inputs(spec, n, dtype, gen, device=None):
    return spec.probe_inputs(n, dtype=dtype, generator=gen, device=device)


@pytest.mark.parametrize("spec", FORWARD_SPECS, ids=spec_id)
def test_batched_forward_matches_modules(spec, dtype, gen, device):
    params = random_params(spec, 3, dtype=dtype, generator=gen).to(device)
    x = _inputs(spec, 8, dtype, gen, device)
    out = spec.forward(params, x)
    assert out.shape == (3, 8, spec.layout[-1]) and out.dtype == dtype
    assert_on((x, out, spec.neuron_values(params, x)), device)
    with torch.no_grad():
        modules = [spec.module(p) for p in params]
        assert_on([list(m.parameters()) for m in modules], device)
        expected = torch.stack([m(x) for m in modules])
    assert relative_diff(out, expected) <= tolerance(dtype)
    # a single network [P] gives [N, n_L]
    assert relative_diff(spec.forward(params[1], x), out[1]) <= tolerance(dtype)


@pytest.mark.parametrize("spec", FORWARD_SPECS, ids=spec_id)
def test_per_network_inputs(spec, dtype, gen):
    """Inputs [B, N, ...] give network b its own batch; shared inputs equal expanded ones."""
    params = random_params(spec, 3, dtype=dtype, generator=gen)
    xs = torch.stack([_inputs(spec, 5, dtype, gen) for _ in range(3)])
    out = spec.forward(params, xs)
    for b in range(3):
        assert relative_diff(out[b], spec.forward(params[b], xs[b])) <= tolerance(dtype)
    shared = spec.forward(params, xs[0])
    expanded = spec.forward(params, xs[0].expand(3, *xs.shape[1:]))
    assert relative_diff(expanded, shared) <= tolerance(dtype)


def test_cnn_minimal_input_reaches_one_pixel(dtype, gen):
    spec = CNNSpec(layout=(1, 4, 4, 4, 10))
    size = spec.min_input_size()
    assert size == 15  # 3x3 stride-2 convs: 15 -> 7 -> 3 -> 1
    params = spec.init_params(2, generator=gen, dtype=dtype)
    x = torch.randn(3, 1, size, size, generator=gen, dtype=dtype)
    with torch.no_grad():
        expected = torch.stack([spec.module(p)(x) for p in params])
    assert relative_diff(spec.forward(params, x), expected) <= tolerance(dtype)


def test_forward_moves_inputs_to_the_networks_device(device):
    """Inputs given elsewhere (the CPU) are moved to the parameters' device, as they are
    converted to their dtype: the outputs live with the networks."""
    spec = MLPSpec(layout=(2, 5, 3), activation="tanh")
    params = random_params(spec, 2, dtype=torch.float64, generator=torch.Generator()).to(device)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(1))  # float32, on the CPU
    out = spec.forward(params, x)
    assert_on(out, device)
    assert torch.equal(out, spec.forward(params, x.to(device, torch.float64)))


def test_siren_output_offset_and_sine_frequency(dtype):
    """f(x) = W_L h + b_L + offset with h = sin(w0 (W x + b)), w0 applied to the bias too."""
    spec = SirenSpec(layout=(2, 1, 1), w0=30.0, output_offset=0.5)
    params = torch.tensor([0.02, -0.01, 0.003, 2.0, 0.25], dtype=dtype)  # W0, b0, W1, b1
    x = torch.tensor([[0.3, -0.7], [-1.0, 1.0]], dtype=dtype)
    expected = 2.0 * torch.sin(30.0 * (x @ params[:2] + 0.003)) + 0.25 + 0.5
    assert relative_diff(spec.forward(params, x)[:, 0], expected) <= tolerance(dtype)


def test_render_grid_convention(dtype, gen, device):
    """img[r, c] = f(x_c, y_r) with x, y = linspace(-1, 1, R)."""
    res = 7
    grid = coordinate_grid(res, dtype=dtype, device=device)
    axis = torch.linspace(-1, 1, res, dtype=dtype, device=device)
    assert_on(grid, device)
    for r in range(res):
        for c in range(res):
            assert torch.equal(grid[r * res + c], torch.stack([axis[c], axis[r]]))
    spec = SirenSpec(layout=(2, 8, 1))
    params = random_params(spec, 2, dtype=dtype, generator=gen).to(device)
    img = spec.render(params, res)
    assert img.shape == (2, res, res)
    assert_on(img, device)
    for r, c in [(0, 0), (1, 5), (6, 2)]:
        point = torch.stack([axis[c], axis[r]]).unsqueeze(0)
        assert relative_diff(img[:, r, c], spec.forward(params, point)[:, 0, 0]) <= tolerance(dtype)
    # a network that ignores y is constant down each column, not along rows
    ws, _ = spec.unflatten(params)
    ws[0][..., 1] = 0.0
    img = spec.render(params, res)
    assert torch.equal(img, img[:, :1, :].expand_as(img))
    assert (img[:, :, 0] - img[:, :, -1]).abs().min() > 0


def test_render_multi_channel_shape(dtype, gen):
    spec = SirenSpec(layout=(2, 8, 3))
    img = spec.render(random_params(spec, 4, dtype=dtype, generator=gen), 5)
    assert img.shape == (4, 5, 5, 3)


@pytest.mark.parametrize(
    "spec",
    [CNNSpec(), CNNSpec(layout=(3, 4, 6, 5), kernel_size=2), CNNSpec(layout=(1, 4, 10))],
    ids=spec_id,
)
def test_tf_order_round_trip_and_layout(spec, dtype):
    p = torch.randn(2, 3, spec.num_params, dtype=dtype)
    assert torch.equal(spec.to_tf_flat(spec.from_tf_flat(p)), p)
    assert torch.equal(spec.from_tf_flat(spec.to_tf_flat(p)), p)
    # TF flat: per layer the kernel (kh, kw, c_in, c_out) or (in, out) row-major, then the bias
    tf = torch.arange(spec.num_params, dtype=dtype)
    ws, bs = spec.unflatten(spec.from_tf_flat(tf))
    offset = 0
    for layer in range(spec.num_layers):
        shape = spec.tf_shape(layer)
        kernel = torch.arange(math.prod(shape), dtype=dtype).reshape(shape) + offset
        if len(shape) == 4:
            kh, kw, ci, co = (s - 1 for s in shape)
            assert ws[layer][co, ci, kh, kw] == kernel[kh, kw, ci, co]
            assert torch.equal(ws[layer], kernel.permute(3, 2, 0, 1))
        else:
            assert torch.equal(ws[layer], kernel.T)
        offset += kernel.numel()
        n_out = spec.layout[layer + 1]
        assert torch.equal(bs[layer], torch.arange(n_out, dtype=dtype) + offset)
        offset += n_out


def test_init_params(dtype, gen):
    """Zoo SIREN init (METHOD.md 1.1): U(+-sqrt(6 / fan_in) / w0) weights, zero hidden biases."""
    spec = SirenSpec()
    params = spec.init_params(64, generator=gen, dtype=dtype)
    assert params.dtype == dtype
    ws, bs = spec.unflatten(params)
    assert all(torch.equal(b, torch.zeros_like(b)) for b in bs[:-1])
    for layer in range(2):
        bound = math.sqrt(6.0 / spec.layout[layer]) / spec.w0
        assert ws[layer].abs().max() <= bound and ws[layer].abs().max() > 0.9 * bound
    again = spec.init_params(64, generator=torch.Generator().manual_seed(0), dtype=dtype)
    assert torch.equal(params, again)
    cnn = CNNSpec()
    scaled = cnn.init_params(3, generator=torch.Generator().manual_seed(1), dtype=dtype, scale=2.0)
    base = cnn.init_params(3, generator=torch.Generator().manual_seed(1), dtype=dtype)
    for layer, (w_s, w_b) in enumerate(
        zip(cnn.unflatten(scaled)[0], cnn.unflatten(base)[0], strict=True)
    ):
        assert torch.equal(w_s, 2.0 * w_b), layer


@pytest.mark.parametrize("spec", [SirenSpec((2, 5, 1)), MLPSpec((2, 4, 3)), CNNSpec()],
                         ids=spec_id)
def test_init_and_probes_on_device_equal_the_cpu_draws(spec, device):
    """Drawn on the seeded CPU generator, moved once: the same numbers on every device."""
    for make in (spec.init_params, spec.probe_inputs):
        here = make(3, generator=torch.Generator().manual_seed(5), device=device)
        assert_on(here, device)
        assert torch.equal(here.cpu(), make(3, generator=torch.Generator().manual_seed(5)))


@pytest.mark.parametrize("spec", FORWARD_SPECS, ids=spec_id)
def test_neuron_values_levels(spec, dtype, gen):
    """One [B, N, n_l] tensor per level; level 0 holds the inputs (CNN: channel means)
    and the last level is exactly the forward pass."""
    params = random_params(spec, 3, dtype=dtype, generator=gen)
    x = _inputs(spec, 5, dtype, gen)
    levels = spec.neuron_values(params, x)
    assert [v.shape for v in levels] == [(3, 5, n) for n in spec.layout]
    first = x.mean(dim=(-2, -1)) if isinstance(spec, CNNSpec) else x
    torch.testing.assert_close(levels[0], first.expand(3, *first.shape))
    torch.testing.assert_close(levels[-1], spec.forward(params, x), rtol=0, atol=0)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_cnn_neuron_values_are_channel_means(activation, dtype, gen):
    spec = CNNSpec((1, 3, 4, 2), activation)
    params = random_params(spec, 2, dtype=dtype, generator=gen)
    x = _inputs(spec, 4, dtype, gen)
    levels = spec.neuron_values(params, x)
    for b in range(2):
        net = spec.module(params[b])
        act = torch.relu if activation == "relu" else torch.tanh
        h = x
        for level, conv in enumerate(net.seq[:-1], start=1):
            h = act(conv(h))
            torch.testing.assert_close(levels[level][b], h.mean(dim=(-2, -1)))
