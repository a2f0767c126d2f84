"""Encoders (ScaleGMN, PNA baseline), the MLP decoder and the autoencoder; the training
configuration that describes one, and finished runs (load, encode, decode, reconstruct)."""

from symmerge.models.autoencoder import Autoencoder, MLPDecoder, build_autoencoder, build_encoder
from symmerge.models.blocks import MLP, Canon, Partition, ScaleEquivariant
from symmerge.models.config import EncoderConfig, resolve_mode
from symmerge.models.pna import GaussianFourierFeatures, PNAEncoder
from symmerge.models.runs import (
    LoadedRun,
    RunLike,
    TrainedModel,
    as_run,
    decode,
    describe_run,
    encode,
    load_run,
    reconstruct,
)
from symmerge.models.scalegmn import EncoderFeatures, ScaleGMNEncoder, ScaleGMNLayer
from symmerge.models.train_config import PRESETS, TrainConfig, resolve_config

__all__ = [
    "MLP",
    "PRESETS",
    "Autoencoder",
    "Canon",
    "EncoderConfig",
    "EncoderFeatures",
    "GaussianFourierFeatures",
    "LoadedRun",
    "MLPDecoder",
    "PNAEncoder",
    "RunLike",
    "Partition",
    "ScaleEquivariant",
    "ScaleGMNEncoder",
    "ScaleGMNLayer",
    "TrainConfig",
    "TrainedModel",
    "as_run",
    "build_autoencoder",
    "build_encoder",
    "decode",
    "describe_run",
    "encode",
    "load_run",
    "reconstruct",
    "resolve_config",
    "resolve_mode",
]
