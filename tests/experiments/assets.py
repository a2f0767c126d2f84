"""Tiny zoos and autoencoder runs shared by the canon, merge and experiment tests.

Built once per test session (cached by base directory): SIRENs fitted for a few
steps to embedded MNIST digits (two per image), small ReLU CNNs trained for a
few steps, and 2-epoch quick autoencoders (ScaleGMN and permutation-only).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from symmerge import CNNSpec, SirenSpec
from symmerge.data import load_images
from symmerge.zoo import save_zoo

SIREN = SirenSpec((2, 16, 16, 1))
CNN = CNNSpec((1, 6, 6, 10), "relu")
TINY_AE = {
    "encoder": {"d_hidden": 8, "num_layers": 1, "d_latent": 8, "dropout": 0.0},
    "decoder_widths": [2],
    "optim": {"batch_size": 16, "warmup_steps": 2},
    "loss": {"images_per_step": 16},
}


@dataclass(frozen=True)
class Assets:
    inr_zoo: Path
    cnn_zoo: Path
    run: Path  # ScaleGMN (sign) autoencoder on inr_zoo
    pna_run: Path  # permutation-only autoencoder on inr_zoo
    cnn_run: Path  # ScaleGMN (scale) autoencoder on cnn_zoo


def fit_sirens(path: Path, *, images: int = 16, per_image: int = 2, steps: int = 60,
               seed: int = 0) -> Path:
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
    save_zoo(path, SIREN, params.detach(), data.labels[idx], image_index=idx,
             provenance={"data": "mnist-embedded"})
    return path


def train_cnns(path: Path, *, n: int = 16, steps: int = 40, seed: int = 0) -> Path:
    data = load_images("mnist-embedded")
    train_idx, test_idx = data.split(0.2, seed=0)
    gen = torch.Generator().manual_seed(seed)
    params = CNN.init_params(n, generator=gen).requires_grad_(True)
    opt = torch.optim.Adam([params], lr=1e-2)
    for _ in range(steps):
        batch = train_idx[torch.randint(0, train_idx.numel(), (64,), generator=gen)]
        logits = CNN.forward(params, data.images[batch])  # [n, 64, 10]
        y = data.labels[batch].expand(n, -1)
        loss = F.cross_entropy(logits.transpose(1, 2), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x, y = data.images[test_idx[:500]], data.labels[test_idx[:500]]
        acc = (CNN.forward(params, x).argmax(-1) == y).float().mean(-1)
    save_zoo(path, CNN, params.detach(), metrics={"test_accuracy": acc},
             provenance={"data": "mnist-embedded", "test_fraction": 0.2, "split_seed": 0})
    return path


@functools.cache
def build_assets(base: str) -> Assets:
    from symmerge.training import train

    root = Path(base) / "symmerge-assets"
    root.mkdir(parents=True, exist_ok=True)
    inr = fit_sirens(root / "inr.safetensors")
    cnn = train_cnns(root / "cnn.safetensors")
    run = root / "run-sign"
    pna = root / "run-pna"
    cnn_run = root / "run-cnn"
    train(inr, run, preset="quick", overrides=TINY_AE, max_epochs=2, progress=False)
    train(inr, pna, preset="quick", overrides={**TINY_AE, "encoder": {
        **TINY_AE["encoder"], "mode": "pna"}}, max_epochs=2, progress=False)
    train(cnn, cnn_run, preset="quick", overrides=TINY_AE, max_epochs=1, progress=False)
    return Assets(inr, cnn, run, pna, cnn_run)
