"""The validated encoder configuration (embedded in the training config)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from symmerge.errors import SymmergeError
from symmerge.specs.base import WeightSpaceSpec

Mode = Literal["auto", "sign", "scale", "permutation", "pna"]

#: Defaults of ``mode: pna`` that differ from the field defaults: Neural Graphs' values.
PNA_DEFAULTS: dict[str, Any] = {
    "d_latent": None,
    "dropout": 0.0,
    "skip": False,
    "edge_pos_embed": False,
    "input_node_value": 0.0,
    "standardize": "mean-std",
    "decode_standardized": False,
}


class EncoderConfig(BaseModel):
    """Encoder hyperparameters, and the autoencoder options :func:`build_autoencoder` reads
    from it (``input_node_value``, ``latent_norm``, ``probe_points``, ``standardize``,
    ``decode_standardized``, ``phase_canonical``). symmerge's additions to the reference
    models are listed, with every key, in METHOD.md 4.2.

    ``mode``: ``sign`` / ``scale`` (ScaleGMN, invariant to hidden-neuron
    permutations and sign flips / positive rescalings), ``permutation``
    (the same message-passing network with plain MLPs), ``pna`` (the
    permutation-only Neural Graphs baseline, :class:`~symmerge.models.pna.PNAEncoder`) or
    ``auto`` (the spec's own symmetry, resolved by :func:`resolve_mode`).

    Mode-dependent defaults: the field defaults below are ScaleGMN's. With ``mode: pna``,
    every key of :data:`PNA_DEFAULTS` that is not given takes Neural Graphs' value instead:
    no projection of the latent (``d_latent=None``), no dropout, no residual (``skip``),
    no edge positional embeddings, input nodes 0, mean/std standardization and a decoder
    that predicts raw parameters. Our additions to Neural Graphs stay available by name
    (``skip``, ``edge_pos_embed``, ``d_latent``, ``probe_points``, ``latent_norm``,
    ``pna_norm="node"``, ``standardize="rms"``, ``decode_standardized``).

    ``ablate`` replaces ``rho(u) + rho(-u)`` (or ``u / |u|``) by ``rho(u)`` everywhere.
    ``d_latent=None`` is only allowed for ``pna``: the latent is then the concatenation of the
    output-node features (``n_out * d_hidden``); a ``d_latent`` that differs from that adds a
    linear projection.
    ``skip``: residual connections around every layer. ``update_edges``: edge updates
    between layers. ``node_pos_embed`` / ``edge_pos_embed``: learned embeddings per node /
    edge type (:mod:`symmerge.graph.template`).
    ``max_hidden_layers``: size of the hidden-layer positional tables (default:
    the spec's depth); raise it to encode deeper networks with the same model.
    ``input_node_value``: feature of input nodes (default 1.0 for SIRENs, else 0.0;
    ``pna``: 0.0).
    ``mlp_on_io``: I/O rows of the equivariant layers get a plain MLP ``phi_io(u)`` instead
    of ``(Gamma u) * phi_io(u)`` (the reference ScaleGMN's CIFAR configurations).
    ``rff_sigma`` / ``rff_dim`` (``pna`` only): the Gaussian random Fourier features of
    biases and weights, ``v -> [cos(2 pi B v), sin(2 pi B v)]`` with ``B [rff_dim, d_in] ~
    N(0, rff_sigma^2)`` (Neural Graphs: 3 and 128).
    ``pna_norm`` (``pna`` only): the norm between layers. ``graph`` is PyG's ``LayerNorm``
    in graph mode (mean and variance over all nodes and channels), as in Neural Graphs,
    but per network: the reference normalizes over the whole minibatch, which makes a
    network's latent depend on its batch neighbours. ``node``: per-node layer norm.
    ``standardize``: how :meth:`Autoencoder.set_param_scale` standardizes every weight and
    bias tensor over the training networks before encoding: ``rms`` divides by its
    root-mean-square (commutes with sign flips and positive scalings, so ScaleGMN keeps its
    invariance); ``mean-std`` subtracts its mean and divides by its standard deviation
    (Neural Graphs' per-layer statistics; the shift breaks sign equivariance, so only for
    ``pna`` and ``permutation``).
    ``decode_standardized``: the decoder predicts standardized parameters, mapped back
    with the fitted statistics (every tensor is predicted at unit scale); off, it predicts
    raw parameters, as Neural Graphs' decoder does.
    ``latent_norm``: standardize every latent dimension with a batch norm (no affine
    map) between encoder and decoder. Invariant latents of different networks differ
    by a few percent of a large shared offset at initialization; standardizing them
    lets the decoder use that variation from the first steps. Training recomputes the
    exact statistics over the training split before each validation, so encoding in
    eval mode is a fixed affine map of each network alone.
    ``probe_points``: K > 0 adds probe features (Neural Graphs, Kofinas et al. 2024) to
    every node: its value at K fixed, seeded probe inputs (hidden nodes: activations,
    which permute, flip sign and scale with their neuron, so invariance is kept;
    output nodes: the network's outputs). They give the encoder the network's function
    directly, which the weights encode only implicitly. Each level's values are divided
    by their RMS over the training split, fitted with the parameter scale
    (``TrainConfig.scale_params``).
    ``phase_canonical`` (SIREN networks only): the autoencoder canonicalizes every input
    network's sine phases (:func:`symmerge.symmetry.phase.canonicalize_phase`, which
    keeps its function) before encoding it, so that phase-shifted copies of a network get
    one latent; saved with the run, so encoding a trained model always does it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = "sign"
    d_hidden: int = Field(128, gt=0)
    num_layers: int = Field(4, gt=0)
    d_latent: int | None = Field(128, gt=0)
    dropout: float = Field(0.2, ge=0, lt=1)
    ablate: bool = False
    bidirectional: bool = False
    num_io_mlps: Literal[2, 3] = 2
    edge_pos_embed: bool = True
    node_pos_embed: bool = True
    skip: bool = True
    update_edges: bool = True
    rff_sigma: float = Field(3.0, gt=0)
    rff_dim: int = Field(128, gt=0)
    pna_norm: Literal["graph", "node"] = "graph"
    max_hidden_layers: int | None = Field(None, ge=0)
    input_node_value: float | None = None
    latent_norm: bool = False
    mlp_on_io: bool = False
    probe_points: int = Field(0, ge=0)
    standardize: Literal["rms", "mean-std"] = "rms"
    decode_standardized: bool = True
    phase_canonical: bool = False

    @model_validator(mode="before")
    @classmethod
    def _mode_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("mode") == "pna":
            return {**PNA_DEFAULTS, **data}
        return data

    @model_validator(mode="after")
    def _check(self) -> EncoderConfig:
        if self.ablate and self.mode not in ("sign", "scale", "auto"):
            raise ValueError("ablate only applies to the sign and scale modes")
        if self.bidirectional and self.mode == "pna":
            raise ValueError("the pna encoder has no bidirectional variant")
        if self.d_latent is None and self.mode != "pna":
            raise ValueError("d_latent may only be omitted for the pna encoder")
        if self.standardize == "mean-std" and self.mode not in ("pna", "permutation"):
            raise ValueError(
                "mean-std standardization breaks sign equivariance; use it with the pna or "
                "permutation modes only"
            )
        return self


def resolve_mode(config: EncoderConfig, spec: WeightSpaceSpec) -> str:
    """The concrete mode for ``spec``; raise SymmergeError on a symmetry mismatch."""
    mode = spec.symmetry if config.mode == "auto" else config.mode
    if mode in ("sign", "scale") and mode != spec.symmetry:
        raise SymmergeError(
            f"encoder mode {mode!r} does not match the {spec.symmetry} symmetry of "
            f"{spec.describe()}"
        )
    return mode
