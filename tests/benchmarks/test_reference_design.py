"""The throughput baseline (benchmarks/reference_design.py) computes what symmerge computes.

Keeps ``benchmarks/bench_train_throughput.py`` honest: if the model changes, the
baseline must change with it, or this test fails.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

from symmerge.models import EncoderConfig, build_autoencoder
from symmerge.specs import SirenSpec
from symmerge.training.losses import RenderLoss

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
SPEC = SirenSpec((2, 6, 5, 1))
RESOLUTION = 12


def _load(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    return _load("reference_design")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny tensors: one thread avoids OpenMP barrier waits on a shared, loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _setup(dropout: float = 0.2):
    torch.manual_seed(0)
    cfg = EncoderConfig(mode="sign", d_hidden=8, num_layers=3, d_latent=8, dropout=dropout)
    model = build_autoencoder(SPEC, cfg).double()
    g = torch.Generator().manual_seed(1)
    params = SPEC.init_params(5, generator=g, dtype=torch.float64)
    params = params + 0.1 * torch.randn(params.shape, generator=g, dtype=torch.float64)
    if hasattr(model, "set_param_scale"):  # non-trivial per-tensor scales, as in training
        model.set_param_scale(params)
    return model, params


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def test_graph_matches_template_gather(reference: ModuleType) -> None:
    model, params = _setup()
    ours = model.graph(params)  # scales by param_scale itself
    ref = reference.reference_graph(SPEC, params / model.param_scale)
    for key in ("x", "edge_attr", "edge_index", "node_type", "edge_type", "batch"):
        assert torch.equal(ours[key], ref[key]), key


def test_same_latent_in_eval(reference: ModuleType) -> None:
    model, params = _setup()
    model.eval()
    base = reference.ReferenceDesignAutoencoder(model).eval()
    torch.testing.assert_close(base.encode(params), model.encode(params))


def test_same_training_loss_and_gradients(reference: ModuleType) -> None:
    """Training mode, dropout on: same seed -> same dropout masks, loss and gradients."""
    model, params = _setup()
    model.train()
    base = reference.ReferenceDesignAutoencoder(model).train()
    ours_loss = RenderLoss(SPEC, RESOLUTION)
    targets = ours_loss.render_targets(params)

    torch.manual_seed(3)
    loss = ours_loss(model(params), targets)
    loss.backward()
    grads = _grads(model)
    model.zero_grad()

    torch.manual_seed(3)
    loss_ref = reference.ReferenceRenderLoss(SPEC, RESOLUTION)(base(params), params)
    loss_ref.backward()
    grads_ref = _grads(model)

    torch.testing.assert_close(loss_ref, loss)
    assert grads.keys() == grads_ref.keys()
    for k in grads:
        torch.testing.assert_close(grads_ref[k], grads[k], msg=k)


def test_rejects_other_modes(reference: ModuleType) -> None:
    torch.manual_seed(0)
    cfg = EncoderConfig(mode="permutation", d_hidden=8, num_layers=2, d_latent=8)
    model = build_autoencoder(SPEC, cfg)
    with pytest.raises(ValueError, match="paper-inr"):
        reference.ReferenceDesignAutoencoder(model)


def test_benchmark_script_smoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``bench_train_throughput.py`` runs end to end (quick preset, batch 2, one step each)."""
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    bench = _load("bench_train_throughput")
    out = tmp_path / "result.json"
    monkeypatch.setattr(sys, "argv", [
        "bench", "--preset", "quick", "--batch-size", "2", "--steps", "1",
        "--baseline-steps", "1", "--warmup-batch", "2", "--infer-repeats", "1",
        "--matmul-size", "32", "--threads", "1", "--json", str(out),
    ])
    bench.main()
    result = json.loads(out.read_text())
    ours, ref = result["rows"]
    assert ours["impl"] == "ours" and ref["impl"] == "reference design"
    assert ours["networks_per_s"] > 0 and ref["networks_per_s"] > 0
    assert ref["gflop_per_step"] > ours["gflop_per_step"] > 0
    assert result["speedup"] > 0
    assert result["max_loss_diff"] < 1e-4  # same weights, batches and masks
