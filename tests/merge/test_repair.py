"""REPAIR (symmerge.merge.repair): the repaired pre-activation statistics are the targets
(closed form and measured independently through the ``nn.Module`` twin), the folding into
the weights is exact, the endpoints are fixed points, and bad inputs are refused."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor

from symmerge import CNNSpec, MLPSpec, SirenSpec, SymmergeError
from symmerge.merge import LayerStats, preactivation_stats, repair, repair_to
from symmerge.merge.repair import repair_inputs
from symmerge.utils.seed import sample_rows
from tests.devices import assert_on

TOL = {torch.float64: {"rtol": 1e-10, "atol": 1e-10}, torch.float32: {"rtol": 2e-4, "atol": 2e-5}}

SPECS = {
    "mlp-relu": MLPSpec((4, 7, 6, 5, 3), "relu"),
    "mlp-tanh": MLPSpec((4, 7, 6, 5, 3), "tanh"),
    "siren": SirenSpec((2, 8, 6, 1), w0=3.0),
    "cnn-relu": CNNSpec((2, 4, 5, 3, 10), "relu"),
    "cnn-tanh": CNNSpec((2, 4, 5, 3, 10), "tanh", kernel_size=2, stride=1),
    # per-convolution kernels, strides and padding; a hidden dense layer after the pooling
    "cnn-padded-dense": CNNSpec((2, 4, 5, 6, 10), "relu", kernel_size=(3, 2), stride=(2, 1),
                                padding=(1, 0), dense_layers=2),
}


def _inputs(spec, n: int, gen: torch.Generator, dtype, device) -> Tensor:
    if isinstance(spec, CNNSpec):
        size = spec.min_input_size() + 3
        x = torch.randn(n, spec.layout[0], size, size, generator=gen, dtype=dtype)
    else:
        x = torch.randn(n, spec.layout[0], generator=gen, dtype=dtype)
    return x.to(device)


def _networks(spec, k: int, seed: int, dtype, device) -> Tensor:
    """``k`` random networks, biases shifted so that the ReLU ones are neither dead nor
    linear."""
    gen = torch.Generator().manual_seed(seed)
    p = spec.init_params(k, generator=gen, dtype=dtype)
    return (p + 0.1 * torch.randn(p.shape, generator=gen, dtype=dtype)).to(device)


# ------------------------------------------------- independent measurement (nn.Module)
def _hidden_layers(module) -> list:
    return list(module.seq)[:-1]


def _stats_dims(z: Tensor) -> tuple[int, ...]:
    return (0, 2, 3) if z.ndim == 4 else (0,)


def module_stats(spec, params: Tensor, x: Tensor) -> LayerStats:
    """Mean and population std of each hidden layer's pre-activation, through forward
    hooks on the spec's ``nn.Module`` (not the code under test)."""
    module = spec.module(params)
    seen: list[Tensor] = []
    hooks = [layer.register_forward_hook(lambda _m, _i, z: seen.append(z))
             for layer in _hidden_layers(module)]
    with torch.no_grad():
        module(x)
    for h in hooks:
        h.remove()
    return LayerStats(tuple(z.mean(_stats_dims(z)) for z in seen),
                      tuple(z.std(_stats_dims(z), correction=0) for z in seen))


def mixed(stats: list[LayerStats], weights: list[float]) -> LayerStats:
    return LayerStats(
        tuple(sum(w * s.mean[h] for w, s in zip(weights, stats, strict=True))
              for h in range(len(stats[0].mean))),
        tuple(sum(w * s.std[h] for w, s in zip(weights, stats, strict=True))
              for h in range(len(stats[0].std))))


def assert_stats(got: LayerStats, want: LayerStats, dtype) -> None:
    for g, w in zip((*got.mean, *got.std), (*want.mean, *want.std), strict=True):
        torch.testing.assert_close(g, w, **TOL[dtype])


def reset_forward(spec, merged: Tensor, targets: LayerStats, x: Tensor,
                  frozen: list[tuple[Tensor, Tensor]] | None = None
                  ) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
    """The merged network with REPAIR's documented correction inserted after each hidden
    layer, as a separate layer (batch-norm style): ``(z - mu_m) * sigma_t / sigma_m +
    mu_t``, with ``mu_m``, ``sigma_m`` measured on this batch (on the already corrected
    earlier layers), or ``frozen`` ones. Returns the outputs and the statistics used."""
    module = spec.module(merged)
    used: list[tuple[Tensor, Tensor]] = []

    def hook(h: int):
        def fn(_m, _i, z):
            shape = (1, -1, 1, 1) if z.ndim == 4 else (1, -1)
            mu, sd = frozen[h] if frozen is not None else (z.mean(_stats_dims(z)),
                                                           z.std(_stats_dims(z), correction=0))
            used.append((mu, sd))
            s = targets.std[h] / sd
            return (z - mu.reshape(shape)) * s.reshape(shape) + targets.mean[h].reshape(shape)
        return fn

    for h, layer in enumerate(_hidden_layers(module)):
        layer.register_forward_hook(hook(h))
    with torch.no_grad():
        return module(x), used


# ------------------------------------------------------------------ closed form
def _factorial(d: int, dtype) -> Tensor:
    """All ``2**d`` sign patterns ``[2**d, d]``: every column has mean 0 and population
    std 1, and the columns are uncorrelated."""
    return torch.tensor(list(itertools.product((-1.0, 1.0), repeat=d)), dtype=dtype)


def _closed_form_expected(spec, merged: Tensor, a: Tensor, b: Tensor, alpha: float
                          ) -> tuple[Tensor, Tensor]:
    """On inputs whose receptive fields are a full factorial design, neuron j's
    pre-activation has mean ``b_j`` and std ``||w_j||``: the first layer's repaired weight
    and bias in closed form."""
    (wm, *_), (bm, *_) = spec.unflatten(merged)
    (wa, *_), (ba, *_) = spec.unflatten(a)
    (wb, *_), (bb, *_) = spec.unflatten(b)

    def norm(w: Tensor) -> Tensor:
        return w.reshape(w.shape[0], -1).norm(dim=1)

    sigma_t = (1 - alpha) * norm(wa) + alpha * norm(wb)
    mu_t = (1 - alpha) * ba + alpha * bb
    s = sigma_t / norm(wm)
    return wm * s.reshape(-1, *([1] * (wm.ndim - 1))), mu_t


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_closed_form_dense(activation, device, dtype):
    spec = MLPSpec((3, 5, 2), activation)
    x = _factorial(3, dtype).to(device)
    a, b, merged = _networks(spec, 3, 0, dtype, device)
    alpha = 0.3
    out = repair(spec, merged, (a, b), x, alpha=alpha)
    assert_on(out, device)
    assert out.dtype == dtype
    w_want, b_want = _closed_form_expected(spec, merged, a, b, alpha)
    ws, bs = spec.unflatten(out)
    torch.testing.assert_close(ws[0], w_want, **TOL[dtype])
    torch.testing.assert_close(bs[0], b_want, **TOL[dtype])
    torch.testing.assert_close(out[spec.offsets[2]:], merged[spec.offsets[2]:])  # output layer
    # sensitivity: the unrepaired network does not pass the same check
    assert not torch.allclose(spec.unflatten(merged)[1][0], b_want, **TOL[dtype])


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_closed_form_conv(activation, device, dtype):
    """Kernel 2, stride 2: the patches of 16 images of 8x8 pixels (2 channels) are the 256
    sign patterns of a 2x2x2 receptive field, each once."""
    spec = CNNSpec((2, 3, 4), activation, kernel_size=2, stride=2)
    patterns = _factorial(8, dtype).reshape(16, 4, 4, 2, 2, 2)  # image, row, col, c, kh, kw
    x = patterns.permute(0, 3, 1, 4, 2, 5).reshape(16, 2, 8, 8).to(device)
    a, b, merged = _networks(spec, 3, 1, dtype, device)
    alpha = 0.6
    out = repair(spec, merged, torch.stack([a, b]), x, alpha=alpha)
    w_want, b_want = _closed_form_expected(spec, merged, a, b, alpha)
    ws, bs = spec.unflatten(out)
    torch.testing.assert_close(ws[0], w_want, **TOL[dtype])
    torch.testing.assert_close(bs[0], b_want, **TOL[dtype])
    torch.testing.assert_close(out[spec.offsets[2]:], merged[spec.offsets[2]:])
    # the design is what the closed form assumes: measured statistics are (b, ||w||)
    got = module_stats(spec, a, x)
    w_a, b_a = spec.unflatten(a)[0][0], spec.unflatten(a)[1][0]
    torch.testing.assert_close(got.mean[0], b_a, **TOL[dtype])
    torch.testing.assert_close(got.std[0], w_a.flatten(1).norm(dim=1), **TOL[dtype])


# ------------------------------------------------------------------- deep networks
@pytest.mark.parametrize("name", list(SPECS))
def test_repaired_statistics_are_the_targets(name, device, dtype):
    """Every hidden layer, measured through the nn.Module twin, after the earlier ones."""
    spec = SPECS[name]
    gen = torch.Generator().manual_seed(2)
    x = _inputs(spec, 24, gen, dtype, device)
    a, b, c = _networks(spec, 3, 3, dtype, device)
    merged = 0.5 * a + 0.25 * b + 0.25 * c
    out = repair(spec, merged, torch.stack([a, b, c]), x, weights=[2, 1, 1])
    assert out.shape == merged.shape
    want = mixed([module_stats(spec, p, x) for p in (a, b, c)], [0.5, 0.25, 0.25])
    assert_stats(module_stats(spec, out, x), want, dtype)
    # sensitivity: other targets (another alpha) are not met, nor by the merged network
    other = mixed([module_stats(spec, p, x) for p in (a, b, c)], [0.1, 0.1, 0.8])
    with pytest.raises(AssertionError):
        assert_stats(module_stats(spec, out, x), other, dtype)
    with pytest.raises(AssertionError):
        assert_stats(module_stats(spec, merged, x), want, dtype)


@pytest.mark.parametrize("name", list(SPECS))
def test_folding_is_the_documented_correction(name, device, dtype):
    """The repaired plain network computes what the merged one computes with the affine
    correction inserted after each hidden layer: on the data (statistics measured there)
    and on other inputs (statistics frozen)."""
    spec = SPECS[name]
    gen = torch.Generator().manual_seed(4)
    x, fresh = _inputs(spec, 20, gen, dtype, device), _inputs(spec, 7, gen, dtype, device)
    a, b = _networks(spec, 2, 5, dtype, device)
    alpha = 0.4
    merged = (1 - alpha) * a + alpha * b
    out = repair(spec, merged, (a, b), x, alpha=alpha)
    targets = mixed([module_stats(spec, p, x) for p in (a, b)], [1 - alpha, alpha])
    ref, used = reset_forward(spec, merged, targets, x)
    torch.testing.assert_close(spec.forward(out, x), ref, **TOL[dtype])
    ref_fresh, _ = reset_forward(spec, merged, targets, fresh, frozen=used)
    torch.testing.assert_close(spec.forward(out, fresh), ref_fresh, **TOL[dtype])
    # sensitivity: the correction changes the function
    assert not torch.allclose(spec.forward(merged, fresh), ref_fresh, **TOL[dtype])


@pytest.mark.parametrize("name", list(SPECS))
def test_endpoints_are_left_unchanged(name, device):
    spec = SPECS[name]
    dtype = torch.float32
    x = _inputs(spec, 16, torch.Generator().manual_seed(6), dtype, device)
    a, b, c = _networks(spec, 3, 7, dtype, device)
    torch.testing.assert_close(repair(spec, a, (a, b), x, alpha=0.0), a, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(repair(spec, b, (a, b), x, alpha=1.0), b, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(repair(spec, c, torch.stack([a, b, c]), x, weights=[0, 0, 3]),
                               c, rtol=1e-4, atol=1e-5)
    # sensitivity: the other endpoint's targets move it
    assert not torch.allclose(repair(spec, a, (a, b), x, alpha=1.0), a, rtol=1e-4, atol=1e-5)


def test_batched_and_chunked_repairs_agree(device):
    spec = SPECS["cnn-relu"]
    dtype = torch.float64
    x = _inputs(spec, 10, torch.Generator().manual_seed(8), dtype, device)
    ends = _networks(spec, 6, 9, dtype, device).reshape(2, 3, -1)  # [K, B, P]
    merged = ends.mean(0)
    batched = repair(spec, merged, ends, x, batch_size=2)
    for i in range(3):
        one = repair(spec, merged[i], ends[:, i], x, batch_size=1)
        torch.testing.assert_close(batched[i], one, rtol=1e-12, atol=1e-12)
    # targets with leading dims [n, T]: paths of repair_to
    alphas = torch.tensor([0.0, 0.5, 1.0], dtype=dtype)
    stats = preactivation_stats(spec, ends, x)
    first = LayerStats(tuple(m[0] for m in stats.mean), tuple(s[0] for s in stats.std))
    last = LayerStats(tuple(m[1] for m in stats.mean), tuple(s[1] for s in stats.std))
    paths = (1 - alphas.reshape(1, -1, 1)) * ends[0, :, None] + alphas.reshape(1, -1, 1) * \
        ends[1, :, None]
    out = repair_to(spec, paths, LayerStats.lerp(first, last, alphas), x, batch_size=4)
    torch.testing.assert_close(out[:, 1], batched, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out[:, [0, 2]], paths[:, [0, 2]], rtol=1e-10, atol=1e-10)


def test_dead_neurons_keep_their_scale(device):
    """A merged neuron constant on the data is not rescaled (s = 1), only moved to the
    target mean; a target std of 0 makes a live neuron constant (s = 0)."""
    spec = MLPSpec((3, 4, 2), "relu")
    dtype = torch.float64
    x = _inputs(spec, 30, torch.Generator().manual_seed(10), dtype, device)
    a, b, merged = (p.clone() for p in _networks(spec, 3, 11, dtype, device))
    w_m = spec.unflatten(merged)[0][0]
    w_m[0] = 0.0  # neuron 0 of the merged network: constant (its bias)
    for p in (a, b):
        spec.unflatten(p)[0][0][1] = 0.0  # neuron 1 of both endpoints: constant
    out = repair(spec, merged, (a, b), x, alpha=0.5)
    assert bool(torch.isfinite(out).all())
    ws, bs = spec.unflatten(out)
    target = mixed([module_stats(spec, p, x) for p in (a, b)], [0.5, 0.5])
    assert bool((ws[0][0] == 0).all()) and bool((ws[0][1] == 0).all())
    torch.testing.assert_close(bs[0][:2], target.mean[0][:2])
    got = module_stats(spec, out, x)
    torch.testing.assert_close(got.std[0][2:], target.std[0][2:])  # the live ones


def test_bad_arguments():
    spec = SPECS["mlp-tanh"]
    a, b = _networks(spec, 2, 12, torch.float32, "cpu")
    x = torch.randn(8, 4)
    cnn = SPECS["cnn-relu"]
    c = _networks(cnn, 2, 0, torch.float32, "cpu")
    for call, message in [
        (lambda: repair(spec, a, (a, b), torch.randn(8, 5)), r"inputs must be \[N, 4\]"),
        (lambda: repair(spec, a, (a, b), torch.randn(1, 4)), "at least 2 samples"),
        (lambda: repair(spec, a, (a, b), x.int()), "floating-point"),
        (lambda: repair(spec, a, (a, b), x * float("nan")), "NaN"),
        (lambda: repair(spec, a, a, x), "endpoints must be"),
        (lambda: repair(spec, a, (a, b), x, alpha=2.0), r"alpha must be in \[0, 1\]"),
        (lambda: repair(spec, a, (a, b), x, eps=-1.0), "eps must be non-negative"),
        (lambda: repair_to(spec, a, preactivation_stats(spec, b[None], x), x),
         "targets must hold"),
        (lambda: repair(cnn, c[0], c, torch.randn(4, 2, 14, 14)), "H, W >= 15"),
        (lambda: repair(cnn, c[0], (a, b), x), "parameters have"),
    ]:
        with pytest.raises(SymmergeError, match=message):
            call()


# -------------------------------------------------------------------- merge inputs
def test_repair_inputs_are_the_training_side_of_the_evaluation_data(assets):
    from symmerge.data import load_images
    from symmerge.evaluation import DataSettings, evaluation_data
    from symmerge.merge import load_network

    net = load_network(f"{assets.cnn_zoo}:0")
    settings = evaluation_data(net).settings  # the zoo's source, split and transform
    x, how = repair_inputs(net.spec, settings, count=50)
    assert x.shape == (50, 1, 28, 28) and "training images of mnist-embedded" in how
    images = load_images("mnist-embedded")
    train, test = images.split(0.2, seed=0)  # the tiny zoo's recorded split
    rows = (x.flatten(1)[:, None] == images.images.flatten(1)[None]).all(-1)  # [50, 5000]
    assert bool(rows[:, train].any(-1).all()) and not bool(rows[:, test].any())
    mlp = MLPSpec((784, 16, 10), "relu")
    x, how = repair_inputs(mlp, DataSettings("classifier", "mnist-embedded"), count=30, seed=1)
    assert x.shape == (30, 784)
    for call, message in [
        (lambda: repair_inputs(SPECS["siren"], settings), "MLPs and CNNs"),
        (lambda: repair_inputs(MLPSpec((78, 4, 10)), settings), "784 values"),
        (lambda: repair_inputs(net.spec, settings, count=0), "count must be"),
    ]:
        with pytest.raises(SymmergeError, match=message):
            call()


def test_sample_rows_spread_over_a_sorted_source():
    """The embedded digits are sorted by class: a sample must not be the first rows."""
    from symmerge.data import load_images

    data = load_images("mnist-embedded")
    picked = sample_rows(torch.arange(len(data)), 500, seed=0)
    assert torch.unique(data.labels[picked]).numel() == 10
    assert torch.equal(picked, torch.sort(picked).values)
    assert torch.equal(sample_rows(picked, 600), picked)
    assert not torch.equal(sample_rows(torch.arange(100), 10, seed=1),
                           sample_rows(torch.arange(100), 10, seed=2))
