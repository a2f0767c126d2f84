"""The tiny zoos and autoencoder runs the test suite shares, defined once.

* :func:`inr_zoo` / :func:`cnn_zoo`: in-memory zoos (built once per process): SIRENs
  fitted for a few steps to embedded MNIST digits (two per image, all ten classes), and
  small ReLU CNNs trained for a few steps on them (with their held-out accuracy); shared:
  read-only.
* :func:`build_assets`: those zoos as files plus quick autoencoders of 1-2 epochs
  (ScaleGMN and permutation-only on the INRs, ScaleGMN on the CNNs); the session fixture
  ``assets`` (``tests/conftest.py``) builds them once per test session.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from symmerge import CNNSpec, SirenSpec
from symmerge.data import load_images
from symmerge.zoo import Zoo

SIREN = SirenSpec((2, 16, 16, 1))
CNN = CNNSpec((1, 6, 6, 10), "relu", stride=3)
#: a tiny autoencoder (overrides of the ``quick`` preset): trains in about a second
TINY_AE = {
    "encoder": {"d_hidden": 8, "num_layers": 1, "d_latent": 8, "dropout": 0.0},
    "decoder_widths": [2],
    "optim": {"batch_size": 16, "warmup_steps": 2},
    "loss": {"images_per_step": 16},
}
#: where the CNN zoo's held-out images come from (how ``train_cnn_zoo`` records it)
CNN_PROVENANCE = {"data": "mnist-embedded", "test_fraction": 0.2, "split_seed": 0}


@dataclass(frozen=True)
class Assets:
    """Zoo files and finished run directories (read-only: copy before changing them)."""

    inr_zoo: Path
    cnn_zoo: Path
    run: Path  # ScaleGMN (sign) autoencoder on inr_zoo
    pna_run: Path  # permutation-only autoencoder on inr_zoo
    cnn_run: Path  # ScaleGMN (scale) autoencoder on cnn_zoo


@functools.cache
def inr_zoo(images: int = 16, per_image: int = 2, steps: int = 60, seed: int = 0) -> Zoo:
    """``images * per_image`` SIRENs of :data:`SIREN` fitted (Adam, ``steps`` full-batch
    steps) to embedded digits spread over all ten classes; in memory."""
    data = load_images("mnist-embedded")
    # mnist-embedded is sorted by class: spread the images over all ten digits
    idx = (torch.arange(images) * (len(data) // images)).repeat_interleave(per_image)
    target = data.images[idx, 0]
    params = SIREN.init_params(len(idx), generator=torch.Generator().manual_seed(seed))
    params.requires_grad_(True)
    opt = torch.optim.Adam([params], lr=1e-3)
    for _ in range(steps):
        loss = ((SIREN.render(params) - target) ** 2).mean(dim=(1, 2)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return Zoo.from_tensors(params.detach(), SIREN, data.labels[idx], image_index=idx,
                            provenance={"data": "mnist-embedded"})


@functools.cache
def cnn_zoo(n: int = 16, steps: int = 100, lr: float = 3e-2, seed: int = 0) -> Zoo:
    """``n`` CNNs of :data:`CNN` trained (Adam, ``steps`` batches of 64) on the training
    part of the embedded digits, with their accuracy on the held-out ones (well above
    chance: a stride of 3 lets the pooled features see more of a digit than 2); in
    memory."""
    data = load_images("mnist-embedded")
    train_idx, test_idx = data.split(CNN_PROVENANCE["test_fraction"],
                                     seed=CNN_PROVENANCE["split_seed"])
    gen = torch.Generator().manual_seed(seed)
    params = CNN.init_params(n, generator=gen).requires_grad_(True)
    opt = torch.optim.Adam([params], lr=lr)
    for _ in range(steps):
        batch = train_idx[torch.randint(0, train_idx.numel(), (64,), generator=gen)]
        logits = CNN.forward(params, data.images[batch])  # [n, 64, 10]
        y = data.labels[batch].expand(n, -1)
        loss = F.cross_entropy(logits.transpose(1, 2), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x, y = data.images[test_idx], data.labels[test_idx]
        acc = (CNN.forward(params, x).argmax(-1) == y).float().mean(-1)
    return Zoo.from_tensors(params.detach(), CNN, metrics={"test_accuracy": acc},
                            provenance=CNN_PROVENANCE)


def build_assets(root: Path) -> Assets:
    """Write the zoos into ``root`` and train the three autoencoder runs there."""
    from symmerge.training import train

    root.mkdir(parents=True, exist_ok=True)
    inr = inr_zoo().save(root / "inr.safetensors")
    cnn = cnn_zoo().save(root / "cnn.safetensors")
    run, pna, cnn_run = root / "run-sign", root / "run-pna", root / "run-cnn"
    train(inr, run, preset="quick", overrides=TINY_AE, max_epochs=2, progress=False)
    train(inr, pna, preset="quick", overrides={**TINY_AE, "encoder": {
        **TINY_AE["encoder"], "mode": "pna"}}, max_epochs=2, progress=False)
    train(cnn, cnn_run, preset="quick", overrides=TINY_AE, max_epochs=1, progress=False)
    return Assets(inr, cnn, run, pna, cnn_run)
