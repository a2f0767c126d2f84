"""Batched SIREN fitting: exact gradients, equivalence with the per-network recipe,
per-network stopping, determinism and resumable zoos."""

from __future__ import annotations

import pytest
import torch

from symmerge.data import ImageSet, load_images
from symmerge.errors import SymmergeError
from symmerge.specs import SirenSpec
from symmerge.zoo import Zoo
from symmerge.zoo import fit_inr as fit_inr_mod
from symmerge.zoo.fit_inr import (
    INR_PRESETS,
    INRFitConfig,
    SirenGridLoss,
    fit_inr_zoo,
    fit_siren_module,
    fit_sirens,
    init_sirens,
    inr_config,
    psnr_from_mse,
)
from symmerge.zoo.shards import shard_dir_for

SPEC = SirenSpec()
FAST = INRFitConfig(steps=40, target_psnr=99.0)


@pytest.fixture(scope="module")
def digits() -> ImageSet:
    full = load_images("mnist-embedded")
    return ImageSet("mnist-first12", full.images[:12].clone(), full.labels[:12].clone())


@pytest.mark.parametrize("layout", [(2, 32, 32, 1), (2, 16, 1), (2, 8, 12, 10, 3)])
def test_grid_loss_matches_render_and_autograd(layout):
    spec = SirenSpec(layout)
    gen = torch.Generator().manual_seed(0)
    params = spec.init_params(4, generator=gen, dtype=torch.float64)
    params = params + 0.05 * torch.randn(params.shape, generator=gen, dtype=torch.float64)
    images = torch.rand(4, layout[-1], 7, 7, generator=gen, dtype=torch.float64)
    mse, grad = SirenGridLoss(spec, 7, torch.float64)(params, fit_inr_mod._targets(images))

    leaf = params.clone().requires_grad_(True)
    rendered = spec.render(leaf, 7).reshape(4, 7, 7, -1)
    ref = ((rendered - images.permute(0, 2, 3, 1)) ** 2).mean(dim=(1, 2, 3))
    ref.sum().backward()
    torch.testing.assert_close(mse, ref.detach(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad, leaf.grad, rtol=1e-10, atol=1e-12)


def test_batched_fit_matches_module_recipe(digits):
    init = init_sirens(SPEC, 0, range(3))
    res = fit_sirens(SPEC, digits.images[:3], init, FAST)
    for i in range(3):
        ref = fit_siren_module(SPEC, digits.images[i], init[i], FAST)
        assert int(res.steps[i]) == int(ref.steps[0]) == FAST.steps
        torch.testing.assert_close(res.params[i], ref.params[0], rtol=0, atol=1e-4)
        assert abs(float(res.psnr[i]) - float(ref.psnr[0])) < 1e-3


def test_result_does_not_depend_on_batch_neighbours(digits):
    init = init_sirens(SPEC, 0, range(6))
    full = fit_sirens(SPEC, digits.images[:6], init, FAST).params
    pair = fit_sirens(SPEC, digits.images[2:4], init[2:4], FAST).params
    alone = fit_sirens(SPEC, digits.images[5:6], init[5:6], FAST).params
    micro = fit_sirens(SPEC, digits.images[:6], init, INRFitConfig(steps=40, target_psnr=99.0,
                                                                      micro_batch=4)).params
    assert torch.equal(full[2:4], pair)
    assert torch.equal(full[5:6], alone)
    assert torch.equal(full, micro)


def test_each_network_stops_on_its_own(digits):
    init = init_sirens(SPEC, 1, range(6))
    cfg = INRFitConfig(steps=150, target_psnr=17.0, schedule="constant")
    res = fit_sirens(SPEC, digits.images[:6], init, cfg)
    steps = res.steps.tolist()
    assert len(set(steps)) > 1 and min(steps) < cfg.steps
    assert all(p >= 17.0 or s == cfg.steps for p, s in zip(res.psnr.tolist(), steps, strict=True))
    # A stopped network holds exactly the parameters of an unstopped run after as many
    # steps, both for an early finisher and for one that trained on after others left.
    for k in (steps.index(min(steps)), steps.index(max(steps))):
        alone = fit_sirens(SPEC, digits.images[k : k + 1], init[k : k + 1],
                           INRFitConfig(steps=steps[k], target_psnr=99.0, schedule="constant"))
        assert torch.equal(res.params[k], alone.params[0])


def test_stored_psnr_is_the_render_psnr(digits):
    init = init_sirens(SPEC, 0, range(4))
    res = fit_sirens(SPEC, digits.images[:4], init, FAST)
    rendered = SPEC.render(res.params)
    psnr = psnr_from_mse(((rendered - digits.images[:4, 0]) ** 2).mean(dim=(1, 2)))
    torch.testing.assert_close(psnr, res.psnr, rtol=0, atol=1e-3)


def test_divergence_keeps_last_finite_parameters(digits):
    init = init_sirens(SPEC, 0, range(2))
    res = fit_sirens(SPEC, digits.images[:2], init,
                     INRFitConfig(lr=1e30, steps=20, target_psnr=99.0, schedule="constant"))
    assert bool(torch.isfinite(res.params).all()) and bool(torch.isfinite(res.psnr).all())
    assert int(res.steps.max()) < 20


def test_config_schedule_and_validation():
    cfg = INRFitConfig(lr=1e-2, warmup=10, steps=110)
    assert cfg.lr_at(0) == pytest.approx(1e-3)
    assert cfg.lr_at(9) == pytest.approx(1e-2)
    assert cfg.lr_at(10) == pytest.approx(1e-2)
    assert cfg.lr_at(60) == pytest.approx(5e-3)
    assert cfg.lr_at(110) == pytest.approx(0.0, abs=1e-12)
    assert INRFitConfig(schedule="constant").lr_at(500) == INRFitConfig().lr
    assert inr_config("quick") == INR_PRESETS["quick"]
    assert inr_config("default", steps=7).steps == 7
    for bad in (dict(lr=0), dict(steps=0), dict(schedule="step"), dict(hidden=(0,)),
                dict(warmup=5, steps=5), dict(betas=(1.0, 0.9))):
        with pytest.raises(SymmergeError):
            INRFitConfig(**bad)
    with pytest.raises(SymmergeError, match="unknown INR preset"):
        inr_config("fast")


def _zoo(digits, out, **kw):
    kw.setdefault("config", FAST)
    kw.setdefault("progress", False)
    kw.setdefault("workers", 1)
    return fit_inr_zoo(digits, out=out, **kw)


def test_zoo_contents_and_determinism(digits, tmp_path):
    a = Zoo(_zoo(digits, tmp_path / "a.safetensors", limit=3, per_image=2, seed=5, chunk_size=4))
    b = Zoo(_zoo(digits, tmp_path / "b.safetensors", limit=3, per_image=2, seed=5, chunk_size=4))
    assert len(a) == 6
    assert a.image_index.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(a.labels, digits.labels[a.image_index])
    assert set(a.metric_names) >= {"psnr", "steps"}
    for name in ("params", "labels", "image_index"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert torch.equal(a.metric("psnr"), b.metric("psnr"))
    assert not torch.equal(a.params[0], a.params[1])  # two seeds per image
    assert a.provenance["seed"] == 5 and a.provenance["config"]["steps"] == FAST.steps
    # Chunking, workers and a different seed.
    c = Zoo(_zoo(digits, tmp_path / "c.safetensors", limit=3, per_image=2, seed=5, chunk_size=5,
                 workers=2))
    assert torch.equal(a.params, c.params)
    d = Zoo(_zoo(digits, tmp_path / "d.safetensors", limit=3, per_image=2, seed=6))
    assert not torch.equal(a.params, d.params)


def test_interrupted_run_resumes_to_the_same_zoo(digits, tmp_path, monkeypatch):
    ref = Zoo(_zoo(digits, tmp_path / "ref.safetensors", limit=5, chunk_size=2, seed=3))
    out = tmp_path / "zoo.safetensors"
    original = fit_inr_mod._INRChunk.__call__

    def killed_in_third_chunk(self, chunk, items, report):
        if chunk == 2:
            raise KeyboardInterrupt
        return original(self, chunk, items, report)

    monkeypatch.setattr(fit_inr_mod._INRChunk, "__call__", killed_in_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        _zoo(digits, out, limit=5, chunk_size=2, seed=3)
    assert not out.exists()
    assert len(list(shard_dir_for(out).glob("chunk-*"))) == 2
    monkeypatch.setattr(fit_inr_mod._INRChunk, "__call__", original)
    done = Zoo(_zoo(digits, out, limit=5, chunk_size=2, seed=3))
    assert torch.equal(done.params, ref.params)
    assert torch.equal(done.metric("psnr"), ref.metric("psnr"))
    assert not shard_dir_for(out).exists()


def test_bad_arguments_write_nothing(digits, tmp_path):
    out = tmp_path / "zoo.safetensors"
    for kw, match in ((dict(limit=0), "^limit must be positive"),
                      (dict(per_image=0), "^per_image must be positive"),
                      (dict(limit=13), "^limit 13 exceeds"),
                      (dict(chunk_size=0), "^chunk_size must be positive")):
        with pytest.raises(SymmergeError, match=match):
            _zoo(digits, out, **kw)
    with pytest.raises(SymmergeError, match="unknown data source"):
        fit_inr_zoo("no-such-source", out=out, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_finished_zoo_is_not_refitted(digits, tmp_path, monkeypatch):
    out = tmp_path / "zoo.safetensors"
    first = Zoo(_zoo(digits, out, limit=2)).params

    def must_not_run(self, chunk, items, report):
        raise AssertionError("refitted an up-to-date zoo")

    monkeypatch.setattr(fit_inr_mod._INRChunk, "__call__", must_not_run)
    assert torch.equal(Zoo(_zoo(digits, out, limit=2)).params, first)
    with pytest.raises(AssertionError, match="refitted"):
        _zoo(digits, out, limit=2, seed=1)  # a different run does refit


@pytest.mark.parametrize("bad", [dict(lr=float("inf")), dict(lr=0.0),
                                 dict(target_psnr=float("nan")), dict(w0=float("inf")),
                                 dict(eps=float("inf")),
                                 dict(steps=0), dict(schedule="linear")])
def test_fit_config_rejects_bad_values(bad):
    with pytest.raises(SymmergeError, match="invalid INR fit config"):
        INRFitConfig(**bad)


def test_fit_config_target_psnr_inf_means_never_stop_early():
    assert INRFitConfig(target_psnr=float("inf")).target_psnr == float("inf")
