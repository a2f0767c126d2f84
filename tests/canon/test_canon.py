"""Canonicalizers: exactness on orbits, function preservation, errors, zoo canonicalization."""

import pytest
import torch

from symmerge import CNNSpec, MLPSpec, SirenSpec, SymmergeError
from symmerge.align import MatchOptions
from symmerge.canon import (
    AECanonicalizer,
    AELiftCanonicalizer,
    SortCanonicalizer,
    canonicalize,
    canonicalize_zoo,
    make_canonicalizer,
)
from symmerge.models.runs import load_run, reconstruct
from symmerge.symmetry import assert_function_preserved, function_error, make_orbit
from symmerge.symmetry.testing import tolerance
from symmerge.zoo import Zoo, load_zoo, save_zoo
from tests.devices import assert_on

SPECS = [SirenSpec((2, 12, 10, 1)), MLPSpec((3, 8, 7, 2), "tanh"), MLPSpec((3, 8, 7, 2), "relu"),
         CNNSpec((1, 4, 5, 3), "relu"), CNNSpec((1, 4, 5, 3), "tanh")]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.family}-{s.activation}")
def test_sort_maps_every_orbit_member_to_identical_parameters(spec, device):
    gen = torch.Generator().manual_seed(0)
    base = spec.init_params(1, generator=gen, dtype=torch.float64, device=device)[0]
    orbit, _ = make_orbit(spec, base, 12, "PD", generator=gen)
    canonical = SortCanonicalizer(spec, batch_size=5)(orbit)
    assert_on(canonical, device)
    # computed on the device, handed back on the inputs' (the CPU)
    elsewhere = SortCanonicalizer(spec, batch_size=5, device=device)(orbit.cpu())
    assert_on(elsewhere, "cpu")
    torch.testing.assert_close(elsewhere, canonical.cpu())
    scale = canonical.abs().max()
    assert float((canonical - canonical[0]).abs().max() / scale) < 1e-12
    assert_function_preserved(spec, orbit, canonical)


def test_sort_single_network_and_float32_orbit():
    spec = SirenSpec((2, 16, 16, 1))
    gen = torch.Generator().manual_seed(1)
    base = spec.init_params(1, generator=gen)[0]
    orbit, _ = make_orbit(spec, base, 8, "PD", generator=gen)
    canonical = canonicalize(orbit, spec, "sort")
    torch.testing.assert_close(canonical, canonical[:1].expand_as(canonical), rtol=0, atol=1e-7)
    assert canonicalize(base, spec, "sort").shape == base.shape


def test_ae_is_the_reconstruction(assets, device):
    model, spec, _ = load_run(assets.run)
    params = load_zoo(assets.inr_zoo).params[:5]
    canon = make_canonicalizer("ae", spec, run=assets.run, device=device)
    assert isinstance(canon, AECanonicalizer) and not canon.exact
    assert_on(list(canon.model.parameters()), device)
    out = canon(params)  # the model on the device, the networks and results on the CPU
    assert_on((out, canon.encode(params), canon.decode(canon.encode(params))), "cpu")
    torch.testing.assert_close(out, reconstruct(model, params), rtol=1e-4, atol=1e-6)
    assert_on((canon(params.to(device)), canon.encode(params.to(device))), device)


@pytest.mark.parametrize("strategy", ["forward", "descent"])
def test_ae_lift_computes_the_input_function(assets, strategy, device):
    spec = load_zoo(assets.inr_zoo).spec
    params = load_zoo(assets.inr_zoo).params[:6].double().to(device)
    canon = make_canonicalizer("ae-lift", spec, run=assets.run, device=device,
                               matching=MatchOptions(strategy=strategy))
    assert isinstance(canon, AELiftCanonicalizer) and canon.exact and canon.strategy == strategy
    lifted, templates = canon.lift(params)
    assert_on((lifted, templates), device)
    gen = torch.Generator().manual_seed(0)
    grid = torch.rand(200, 2, generator=gen, dtype=torch.float64, device=device) * 2 - 1
    assert function_error(spec, params, lifted, grid) < tolerance(torch.float64)
    assert function_error(spec, params.float(), canon(params.float())) < tolerance(torch.float32)
    if strategy == "forward":  # one pass: no guarantee to ascend from the input
        return
    # the descent moved towards the template: never farther than the input
    dot_in = (templates.double() * params).sum(1)
    dot_out = (templates.double() * lifted).sum(1)
    assert bool((dot_out >= dot_in - 1e-9).all())


def test_ae_lift_on_cnns_preserves_logits(assets):
    spec = load_zoo(assets.cnn_zoo).spec
    params = load_zoo(assets.cnn_zoo).params[:4]
    lifted = make_canonicalizer("ae-lift", spec, run=assets.cnn_run)(params)
    assert function_error(spec, params, lifted) < 1e-5


@pytest.mark.parametrize("strategy", ["forward", "descent"])
def test_ae_lift_maps_an_exact_orbit_to_one_point(assets, strategy):
    """forward: by construction; descent: through the sorted start (``presort``)."""
    z = load_zoo(assets.inr_zoo)
    orbit, _ = make_orbit(z.spec, z.params[3], 8, "PD", generator=torch.Generator().manual_seed(2))
    lifted = make_canonicalizer("ae-lift", z.spec, run=assets.run,
                                matching=MatchOptions(strategy=strategy))(orbit)
    rel = (lifted - lifted[0]).abs().max() / lifted.abs().max()
    assert float(rel) < 1e-4


def test_errors(assets):
    spec = SirenSpec((2, 16, 16, 1))
    with pytest.raises(SymmergeError, match="unknown canonicalization method"):
        make_canonicalizer("magic", spec)
    with pytest.raises(SymmergeError, match="is no canonicalization method"):
        make_canonicalizer("wm", spec)
    with pytest.raises(SymmergeError, match=r"needs a trained \(ScaleGMN\) autoencoder: "
                                            "pass run=DIR"):
        make_canonicalizer("ae-lift", spec)
    with pytest.raises(SymmergeError, match="was trained on"):
        make_canonicalizer("ae", SirenSpec((2, 8, 8, 1)), run=assets.run)
    with pytest.raises(SymmergeError, match="strategy must be one of descent, forward"):
        make_canonicalizer("ae-lift", run=assets.run, matching=MatchOptions(strategy="greedy"))
    with pytest.raises(SymmergeError, match="parameters have shape"):
        SortCanonicalizer(spec)(torch.zeros(3, 7))
    with pytest.raises(SymmergeError, match="NaN"):
        SortCanonicalizer(spec)(torch.full((1, spec.num_params), float("nan")))


@pytest.mark.parametrize("method", ["sort", "ae"])
def test_canonicalize_zoo(assets, tmp_path, method, device):
    out = tmp_path / f"{method}.safetensors"
    rep = canonicalize_zoo(assets.inr_zoo, out, method, run=assets.run, device=device)
    src, dst = load_zoo(assets.inr_zoo), load_zoo(out)
    assert len(dst) == len(src) == rep.networks and rep.exact == (method == "sort")
    assert torch.equal(dst.labels, src.labels) and torch.equal(dst.image_index, src.image_index)
    assert dst.provenance["canonicalization"] == method
    if method == "sort":
        assert_function_preserved(src.spec, src.params, dst.params)


def test_ae_lift_keeps_its_matching_settings(assets):
    spec = load_zoo(assets.inr_zoo).spec
    model = load_run(assets.run).model
    lift = AELiftCanonicalizer(spec, model)
    assert lift.strategy == "forward" and lift.matching == MatchOptions(strategy="forward")
    descent = AELiftCanonicalizer(spec, model, matching=MatchOptions(restarts=2, seed=3,
                                                                     strategy="descent"))
    assert descent.matching == MatchOptions(restarts=2, seed=3, strategy="descent")
    assert descent.provenance() == {"lift_strategy": "descent"}
    assert SortCanonicalizer(spec).provenance() == {}


def test_canonicalize_zoo_in_memory(assets, tmp_path):
    """A Zoo in, the canonical zoo out in memory; nothing is written without ``out``."""
    src = load_zoo(assets.inr_zoo)
    before = sorted(tmp_path.iterdir())
    rep = canonicalize_zoo(src, method="sort", device="cpu")
    assert rep.out is None and sorted(tmp_path.iterdir()) == before
    assert rep.zoo.path is None and len(rep.zoo) == len(src)
    assert rep.zoo.provenance["canonicalized_from"] == str(assets.inr_zoo)
    assert_function_preserved(src.spec, src.params, rep.zoo.params)
    written = canonicalize_zoo(assets.inr_zoo, tmp_path / "c.safetensors", "sort", device="cpu")
    assert torch.equal(load_zoo(written.out).params, rep.zoo.params)
    mem = Zoo.from_tensors(src.params[:4], src.spec, src.labels[:4])
    assert canonicalize_zoo(mem, method="sort").zoo.provenance["canonicalized_from"] == \
        "in-memory zoo"


@pytest.mark.parametrize("method", ["sort", "ae"])
def test_canonicalize_zoo_keeps_a_stored_split(assets, tmp_path, method):
    src = load_zoo(assets.inr_zoo)
    split = torch.arange(len(src)) % 3
    zoo = tmp_path / "split.safetensors"
    save_zoo(zoo, src.spec, src.params, src.labels, image_index=src.image_index, split=split)
    canonicalize_zoo(zoo, tmp_path / "out.safetensors", method, run=assets.run)
    assert torch.equal(load_zoo(tmp_path / "out.safetensors").stored_split, split)
