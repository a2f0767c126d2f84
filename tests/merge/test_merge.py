"""Merging: weights, methods, N-model merges, network files."""

import pytest
import torch
from safetensors.torch import save_file

from symmerge import CNNSpec, MLPSpec, SirenSpec, SymmergeError
from symmerge.align import MatchOptions
from symmerge.canon import SortCanonicalizer, make_canonicalizer
from symmerge.merge import (
    infer_spec,
    load_module,
    load_network,
    load_networks,
    merge,
    merge_weights,
    parse_spec,
    save_network,
)
from symmerge.models import LoadedRun, load_run
from symmerge.symmetry import assert_function_preserved, make_orbit
from symmerge.zoo import load_zoo
from tests.devices import assert_on

SPEC = SirenSpec((2, 16, 16, 1))


def test_merge_weights():
    torch.testing.assert_close(merge_weights(4), torch.full((4,), 0.25, dtype=torch.float64))
    torch.testing.assert_close(merge_weights(2, alpha=0.3),
                               torch.tensor([0.7, 0.3], dtype=torch.float64))
    torch.testing.assert_close(merge_weights(3, weights=[1, 1, 2]),
                               torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64))
    for kwargs, msg in [({"alpha": 0.5, "n": 3}, "alpha is for two networks; use weights"),
                        ({"alpha": 0.5, "weights": [1, 1], "n": 2},
                         "either alpha or weights"),
                        ({"alpha": 1.5, "n": 2}, r"in \[0, 1\]"),
                        ({"weights": [1, 2], "n": 3}, "one number per network: got 2 for 3"),
                        ({"weights": [1, -1], "n": 2}, "non-negative"),
                        ({"weights": [float("nan"), 1], "n": 2}, "finite"),
                        ({"weights": [float("inf"), 1], "n": 2}, "finite"),
                        ({"weights": [0, 0], "n": 2}, "not all zero"),
                        ({"alpha": float("nan"), "n": 2}, r"in \[0, 1\]"),
                        ({"n": 1}, "at least 2")]:
        n = kwargs.pop("n")
        with pytest.raises(SymmergeError, match=msg):
            merge_weights(n, **kwargs)


def test_huge_weights_normalize_without_overflow():
    # their sum overflows float64: dividing by it gave weights 0, 0 and an all-zero network
    torch.testing.assert_close(merge_weights(2, weights=[1e308, 1e308]),
                               torch.tensor([0.5, 0.5], dtype=torch.float64))
    torch.testing.assert_close(merge_weights(3, weights=[1e308, 0, 5e307]),
                               torch.tensor([2 / 3, 0, 1 / 3], dtype=torch.float64))
    params = SPEC.init_params(2, generator=torch.Generator().manual_seed(0))
    merged = merge(params, SPEC, "naive", weights=[1e308, 1e308]).params
    torch.testing.assert_close(merged, params.mean(0))


def test_merge_options_are_checked_before_work(monkeypatch):
    from symmerge.merge import check_merge_options
    from symmerge.methods import frames

    def never(*args, **kwargs):
        raise AssertionError("merged with options that were not checked")

    monkeypatch.setattr(frames, "align_networks", never)
    params = SPEC.init_params(2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(SymmergeError, match="wm_iters"):
        check_merge_options(2, wm_iters=10**6)
    with pytest.raises(SymmergeError, match="wm_iters"):
        merge(params, SPEC, "wm", wm_iters=10**6)
    with pytest.raises(SymmergeError, match="alpha is for two networks"):
        merge(SPEC.init_params(3), SPEC, "wm", alpha=0.5)


def test_naive_is_the_weighted_mean():
    params = SPEC.init_params(3, generator=torch.Generator().manual_seed(0))
    res = merge(params, SPEC, "naive", weights=[1, 2, 1])
    torch.testing.assert_close(res.params, 0.25 * params[0] + 0.5 * params[1] + 0.25 * params[2])


@pytest.mark.parametrize("method", ["wm", "sort"])
@pytest.mark.parametrize("n", [2, 4])
def test_merging_an_exact_orbit_returns_its_function(method, n, device):
    spec = MLPSpec((3, 10, 8, 2), "relu") if n == 4 else SPEC
    gen = torch.Generator().manual_seed(n)
    base = spec.init_params(1, generator=gen, dtype=torch.float64, device=device)[0]
    orbit, _ = make_orbit(spec, base, n, "PD", generator=gen)
    res = merge(orbit, spec, method)
    assert_on((res.params, res.aligned, res.weights), device)
    elsewhere = merge(orbit.cpu(), spec, method, device=device)  # computed there, back here
    assert_on((elsewhere.params, elsewhere.aligned, elsewhere.weights), "cpu")
    torch.testing.assert_close(elsewhere.params, res.params.cpu())
    assert res.aligned.shape == orbit.shape
    assert_function_preserved(spec, orbit, res.aligned)
    assert_function_preserved(spec, base.unsqueeze(0), res.params.unsqueeze(0))
    naive = merge(orbit, spec, "naive").params
    inputs = spec.probe_inputs(dtype=torch.float64, generator=gen)
    err_naive = (spec.forward(naive, inputs) - spec.forward(base, inputs)).abs().max()
    assert float(err_naive) > 1e-3  # naive averaging of an orbit does break the function


def test_n_model_merge_goes_through_canonical_space_in_one_batch(assets, monkeypatch, device):
    from symmerge.canon.core import AELiftCanonicalizer

    calls = []
    orig = AELiftCanonicalizer.lift

    def spy(self, params, templates=None):
        calls.append(params.shape[0])
        return orig(self, params, templates)

    monkeypatch.setattr(AELiftCanonicalizer, "lift", spy)
    z = load_zoo(assets.inr_zoo)
    params = z.params[:5]
    res = merge(params, z.spec, "ae-lift", run=assets.run, device=device,
                matching=MatchOptions(strategy="descent"))
    assert_on((res.params, res.aligned), "cpu")
    assert res.provenance == {"lift_strategy": "descent"}
    assert calls == [5]  # one batched canonicalization, no pairwise matching
    assert_function_preserved(z.spec, params, res.aligned)
    torch.testing.assert_close(res.params, res.aligned.mean(0))
    ae = merge(params, z.spec, "ae", run=assets.run)
    assert ae.params.shape == (z.spec.num_params,)


def test_a_model_in_memory_merges_as_its_run_directory(assets):
    """``run=`` takes a model trained in memory (here the run's, loaded): the same merge."""
    z = load_zoo(assets.inr_zoo)
    params, memory = z.params[:3], load_run(assets.run)
    memory = LoadedRun(memory.model, memory.spec, memory.config)  # no directory
    for method in ("ae", "ae-lift"):
        a = merge(params, z.spec, method, run=memory)
        b = merge(params, z.spec, method, run=assets.run)
        torch.testing.assert_close(a.params, b.params, rtol=0, atol=0)
    canon = make_canonicalizer("ae", z.spec, run=memory)
    torch.testing.assert_close(canon(params), merge(params, z.spec, "ae", run=memory).aligned)


def test_wm_with_many_models_uses_iterated_mean():
    spec = MLPSpec((3, 12, 12, 2), "tanh")
    params = spec.init_params(5, generator=torch.Generator().manual_seed(3))
    res = merge(params, spec, "wm", wm_iters=3)
    assert 1 <= res.info["wm_rounds"] <= 3
    assert_function_preserved(spec, params, res.aligned)


def test_merge_errors():
    params = SPEC.init_params(2)
    with pytest.raises(SymmergeError, match="unknown merge method 'soup'; choose one of naive"):
        merge(params, SPEC, "soup")
    with pytest.raises(SymmergeError, match="method 'ae-latent' is no merge method"):
        merge(params, SPEC, "ae-latent")
    with pytest.raises(SymmergeError, match=r"needs a trained \(ScaleGMN\) autoencoder: "
                                            "pass run=DIR"):
        merge(params, SPEC, "ae")
    with pytest.raises(SymmergeError, match="does not canonicalize as method 'ae'"):
        merge(params, SPEC, "ae", canonicalizer=SortCanonicalizer(SPEC))


def test_matching_settings_reach_the_matching(monkeypatch):
    """One MatchOptions sets wm's matching; ae-lift's template matching records its
    strategy in the result's provenance."""
    from symmerge.methods import frames

    seen = []
    orig = frames.weight_matching

    def spy(spec, a, b, matching):
        seen.append(matching)
        return orig(spec, a, b, matching)

    monkeypatch.setattr(frames, "weight_matching", spy)
    params = SPEC.init_params(3, generator=torch.Generator().manual_seed(0))
    opts = MatchOptions(restarts=2, max_iter=7, seed=4)
    merge(params, SPEC, "wm", matching=opts, wm_iters=1)
    assert seen and all(m == opts for m in seen)


# ------------------------------------------------------------------ files
def test_network_files_round_trip(tmp_path, assets):
    params = SPEC.init_params(1, generator=torch.Generator().manual_seed(0))[0]
    out = save_network(tmp_path / "net.safetensors", SPEC, params, {"note": "x"})
    net = load_network(out)
    assert net.spec == SPEC and torch.equal(net.params, params)
    module = load_module(out)
    x = SPEC.probe_inputs()
    torch.testing.assert_close(module(x), SPEC.forward(params, x))

    pth = tmp_path / "net.pth"
    torch.save(SPEC.module(params).state_dict(), pth)
    inferred = load_network(pth)
    assert inferred.spec == SPEC and torch.equal(inferred.params, params)
    torch.save({"state_dict": SPEC.module(params).state_dict(), "epoch": 3}, tmp_path / "ck.pth")
    assert torch.equal(load_network(tmp_path / "ck.pth").params, params)

    z = load_zoo(assets.inr_zoo)
    ref = load_network(f"{assets.inr_zoo}:3")
    assert ref.spec == z.spec and torch.equal(ref.params, z.params[3])
    spec, stacked = load_networks([f"{assets.inr_zoo}:0", f"{assets.inr_zoo}:{len(z) - 1}"])
    assert spec == z.spec and stacked.shape == (2, z.spec.num_params)


def test_spec_inference_and_parsing(tmp_path, assets):
    assert infer_spec(SirenSpec((2, 5, 3)).module().state_dict()) == SirenSpec((2, 5, 3))
    cnn = CNNSpec((1, 4, 10), "tanh")
    with pytest.raises(SymmergeError, match="pass activation .* or spec"):
        infer_spec(cnn.module().state_dict())
    with pytest.raises(SymmergeError, match="cannot infer"):
        infer_spec({"fc.weight": torch.zeros(2, 2)})
    assert parse_spec(cnn.to_json()) == cnn
    (tmp_path / "spec.json").write_text(cnn.to_json())
    assert parse_spec(str(tmp_path / "spec.json")) == cnn
    assert parse_spec(str(assets.inr_zoo)) == load_zoo(assets.inr_zoo).spec
    pth = tmp_path / "cnn.pth"
    torch.save(cnn.module().state_dict(), pth)
    assert load_network(pth, cnn).spec == cnn


def test_file_errors(tmp_path, assets):
    with pytest.raises(SymmergeError, match="not found"):
        load_network(tmp_path / "missing.pth")
    with pytest.raises(SymmergeError, match="is a zoo"):
        load_network(assets.inr_zoo)
    with pytest.raises(SymmergeError, match="out of range"):
        load_network(f"{assets.inr_zoo}:999")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(SymmergeError, match="cannot read"):
        load_network(bad)
    other = tmp_path / "other.safetensors"
    save_network(other, SirenSpec((2, 8, 8, 1)), SirenSpec((2, 8, 8, 1)).init_params(1)[0])
    with pytest.raises(SymmergeError, match="architectures differ"):
        load_networks([f"{assets.inr_zoo}:0", other])
    with pytest.raises(SymmergeError, match="but the spec given"):
        load_network(other, SPEC)
    loose = tmp_path / "loose.safetensors"
    save_file({"w": torch.zeros(2)}, str(loose))
    with pytest.raises(SymmergeError, match="cannot infer"):
        load_network(loose)


def test_the_default_method_is_exact_weight_matching():
    """Without a method, merge aligns (wm): an orbit's members merge into the function they
    share; the plain average stays available by name and does not."""
    spec = MLPSpec((3, 8, 8, 2), "tanh")
    gen = torch.Generator().manual_seed(0)
    base = spec.init_params(1, generator=gen)[0]
    orbit, _ = make_orbit(spec, base, 2, "PD", generator=gen)
    default = merge(orbit, spec)
    assert default.method == "wm"
    torch.testing.assert_close(default.params, merge(orbit, spec, "wm").params)
    assert_function_preserved(spec, base, default.params)
    with pytest.raises(AssertionError, match="function changed"):
        assert_function_preserved(spec, base, merge(orbit, spec, "naive").params)
