"""Encoders (ScaleGMN, PNA baseline), the MLP decoder and the autoencoder."""

from symmerge.models.autoencoder import Autoencoder, MLPDecoder, build_autoencoder, build_encoder
from symmerge.models.blocks import MLP, Canon, Partition, ScaleEquivariant
from symmerge.models.config import EncoderConfig, resolve_mode
from symmerge.models.pna import GaussianFourierFeatures, PNAEncoder
from symmerge.models.scalegmn import EncoderFeatures, ScaleGMNEncoder, ScaleGMNLayer

__all__ = [
    "MLP",
    "Autoencoder",
    "Canon",
    "EncoderConfig",
    "EncoderFeatures",
    "GaussianFourierFeatures",
    "MLPDecoder",
    "PNAEncoder",
    "Partition",
    "ScaleEquivariant",
    "ScaleGMNEncoder",
    "ScaleGMNLayer",
    "build_autoencoder",
    "build_encoder",
    "resolve_mode",
]
