import pytest
import torch

from symmerge import CNNSpec, MLPSpec, SirenSpec, SymmergeError
from symmerge.training.losses import (
    DistillationLoss,
    RenderLoss,
    accuracy,
    cnn_accuracy_report,
    distillation_loss,
)
from tests.devices import assert_on


def test_render_loss_matches_manual_mse(device):
    spec = SirenSpec((2, 8, 1))
    g = torch.Generator().manual_seed(0)
    a, b = spec.init_params(3, generator=g, device=device), spec.init_params(3, generator=g)
    b = b.to(device)
    loss = RenderLoss(spec, resolution=12)
    targets = loss.render_targets(a, batch_size=2)
    assert targets.shape == (3, 12, 12)
    assert_on((targets, loss(b, targets)), device)
    expected = ((spec.render(b, 12) - spec.render(a, 12)) ** 2).mean()
    assert torch.allclose(loss(b, targets), expected)
    assert loss(a, targets) < 1e-12


def test_render_loss_stays_float32_under_bf16_autocast(device):
    """bfloat16 phases w0 * z are far off at w0 = 30: the render loss opts out of autocast."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    spec = SirenSpec((2, 16, 16, 1))
    g = torch.Generator().manual_seed(0)
    a, b = (spec.init_params(2, generator=g, device=device) for _ in range(2))
    loss = RenderLoss(spec, resolution=10)
    targets = loss.render_targets(a)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        mixed = loss(b, targets)
    assert mixed.dtype == torch.float32 and torch.equal(mixed, loss(b, targets))


def test_render_loss_rejects_non_siren():
    with pytest.raises(SymmergeError, match="SIREN"):
        RenderLoss(MLPSpec((2, 4, 1)))


def test_distillation_zero_iff_same_logits():
    t = torch.randn(4, 5, 10)
    assert distillation_loss(t, t, 0.6).abs() < 1e-6
    assert distillation_loss(t + torch.randn_like(t), t, 0.6) > 1e-3


def test_distillation_loss_uses_training_images(device):
    spec = CNNSpec((1, 4, 4, 3))
    g = torch.Generator().manual_seed(0)
    params = spec.init_params(2, generator=g, device=device)
    images = torch.randn(20, 1, 16, 16, generator=g)
    kd = DistillationLoss(spec, images, temperature=2.0, images_per_step=8).to(device)
    assert_on(kd.train_images, device)  # a buffer: it follows the module
    assert kd(params, params) < 1e-6
    other = spec.init_params(2, generator=g, device=device)
    seeded = kd(other, params, generator=torch.Generator(device=device).manual_seed(1))
    assert_on(seeded, device)
    assert seeded > 1e-4
    again = kd(other, params, generator=torch.Generator(device=device).manual_seed(1))
    torch.testing.assert_close(seeded, again)  # the generator alone picks the images


def test_accuracy_matches_module_and_report(device):
    spec = CNNSpec((1, 4, 4, 3))
    g = torch.Generator().manual_seed(0)
    params = spec.init_params(3, generator=g, device=device)
    images = torch.randn(30, 1, 16, 16, generator=g)  # on the CPU: moved batch by batch
    labels = torch.randint(0, 3, (30,), generator=g)
    acc = accuracy(spec, params, images, labels, batch_size=7)
    assert_on(acc, device)
    for i in range(3):
        pred = spec.module(params[i])(images.to(device)).argmax(-1).cpu()
        assert acc[i] == pytest.approx((pred == labels).float().mean().item(), abs=1e-6)
    report = cnn_accuracy_report(spec, params, params, images, labels)
    assert report["acc_l1"] == 0
    assert report["acc_original"] == pytest.approx(report["acc_decoded"])
