"""Shared helpers of the model tests."""

from __future__ import annotations

import torch

from symmerge.models import EncoderConfig, build_autoencoder

TINY = {"d_hidden": 16, "num_layers": 3, "d_latent": 16}


def tiny_model(spec, dtype=torch.float64, **overrides):
    """A tiny autoencoder in eval mode and ``dtype``, seeded."""
    torch.manual_seed(0)
    cfg = EncoderConfig(**{"mode": "auto", **TINY, **overrides})
    return build_autoencoder(spec, cfg).to(dtype).eval()


def random_params(spec, batch, dtype=torch.float64, seed=0):
    """Initial parameters plus noise (so that biases are non-zero)."""
    g = torch.Generator().manual_seed(seed)
    p = spec.init_params(batch, generator=g, dtype=dtype)
    return p + 0.1 * torch.randn(p.shape, generator=g, dtype=dtype)
