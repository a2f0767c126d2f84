"""MLP decoder, the autoencoder, and the builder that picks the encoder from the config."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from symmerge.errors import SymmergeError
from symmerge.graph.convert import params_to_graph, probe_node_features
from symmerge.graph.template import graph_template
from symmerge.models.config import EncoderConfig, resolve_mode
from symmerge.models.pna import PNAEncoder
from symmerge.models.scalegmn import ScaleGMNEncoder
from symmerge.specs.base import WeightSpaceSpec
from symmerge.specs.siren import SirenSpec
from symmerge.symmetry.phase import canonicalize_phase
from symmerge.utils.device import float32_region

#: Seed of the probe inputs: the same inputs in every run, for every spec.
PROBE_SEED = 0


class MLPDecoder(nn.Sequential):
    """``Linear(d_latent, h_1) -> SiLU -> ... -> Linear(h_k, num_params)``.

    Under mixed precision the last layer runs in float32: the decoded weights keep
    float32 precision (a SIREN's first layer is multiplied by ``w0``)."""

    def __init__(self, d_latent: int, num_params: int, hidden: Sequence[int]) -> None:
        sizes = [d_latent, *hidden]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), nn.SiLU()]
        layers.append(nn.Linear(sizes[-1], num_params))
        super().__init__(*layers)

    def forward(self, z: Tensor) -> Tensor:
        *body, last = self
        h = z
        for layer in body:
            h = layer(h)
        with float32_region(h):
            return last(h.to(last.weight.dtype))


class Autoencoder(nn.Module):
    """``decode(encode(params))``: flat ``[B, P]`` parameters in the spec's PyTorch order.

    ``param_scale [P]`` holds one positive constant per weight/bias tensor (1 until
    :meth:`set_param_scale` fits it to a zoo), and with ``standardize="mean-std"``
    ``param_shift [P]`` one mean per tensor: the encoder sees ``(params - param_shift) /
    param_scale``, and with ``decode_standardized`` the decoder's output is mapped back
    the same way, so every layer is seen and predicted at unit scale. A positive constant
    per tensor commutes with the permutation, sign and positive-scale actions, so
    invariance is unaffected; a shift commutes with permutations only.

    With ``phase_canonical`` (SIREN specs only) every network is phase-canonicalized
    (:func:`~symmerge.symmetry.phase.canonicalize_phase`) before anything else sees it:
    the parameter statistics, the graph and the probe features. It keeps the network's
    function, so render targets do not change, and makes the latent invariant to phase
    shifts too.
    """

    def __init__(
        self,
        spec: WeightSpaceSpec,
        encoder: nn.Module,
        decoder: nn.Module,
        *,
        input_node_value: float | None = None,
        latent_norm: bool = False,
        probe_points: int = 0,
        standardize: str = "rms",
        decode_standardized: bool = True,
        phase_canonical: bool = False,
    ) -> None:
        super().__init__()
        if standardize not in ("rms", "mean-std"):
            raise SymmergeError(f"standardize must be 'rms' or 'mean-std', got {standardize!r}")
        if phase_canonical and not isinstance(spec, SirenSpec):
            raise SymmergeError(
                f"phase_canonical applies to SIREN networks only, not {spec.describe()}"
            )
        self.spec = spec
        self.encoder = encoder
        self.decoder = decoder
        self.input_node_value = input_node_value
        self.decode_standardized = decode_standardized
        self.phase_canonical = phase_canonical
        self.register_buffer("param_scale", torch.ones(spec.num_params))
        self.register_buffer(
            "param_shift", torch.zeros(spec.num_params) if standardize == "mean-std" else None
        )
        # fixed probe inputs (seeded, saved with the weights) and one positive scale per
        # level of probe values, fitted with the parameter scale
        probes = (
            spec.probe_inputs(probe_points, generator=torch.Generator().manual_seed(PROBE_SEED))
            if probe_points else None
        )
        self.register_buffer("probe_inputs", probes)
        self.register_buffer(
            "probe_scale", torch.ones(spec.num_layers + 1) if probe_points else None
        )
        # momentum=None: running statistics are plain averages, so a reset followed by
        # one pass over the training split gives that split's exact statistics; a small
        # eps, since untrained invariant latents can vary very little across networks and
        # the default eps would swamp their variance (METHOD.md 4.2)
        self.latent_norm: nn.Module = (
            nn.BatchNorm1d(encoder.latent_dim, eps=1e-8, affine=False, momentum=None)
            if latent_norm else nn.Identity()
        )

    @torch.no_grad()
    def set_param_scale(self, params: Tensor) -> Tensor:
        """Fit the statistics of every tensor over ``params [N, P]``: ``param_scale`` is
        its root-mean-square, or with ``param_shift`` its standard deviation (and
        ``param_shift`` its mean), of the networks the encoder sees (phase-canonical ones
        with ``phase_canonical``), computed on the model's device. Returns ``param_scale``."""
        params = self.canonical(self.spec.check_params(params).to(self.param_scale))
        offsets = self.spec.offsets
        scale = torch.empty_like(self.param_scale)
        for a, b in itertools.pairwise(offsets):
            block = params[:, a:b]
            if self.param_shift is None:
                scale[a:b] = block.square().mean().sqrt().clamp_min(1e-8)
            else:
                self.param_shift[a:b] = block.mean()
                scale[a:b] = block.std().nan_to_num(0.0).clamp_min(1e-8)
        self.param_scale.copy_(scale)
        if self.probe_scale is not None:
            sums = torch.zeros_like(self.probe_scale, dtype=torch.float64)
            for chunk in params.split(256):
                levels = self.spec.neuron_values(chunk, self.probe_inputs.to(chunk.dtype))
                sums += torch.stack([v.double().square().mean() * len(chunk) for v in levels])
            self.probe_scale.copy_((sums / len(params)).sqrt().clamp_min(1e-8))
        return scale

    @property
    def latent_dim(self) -> int:
        return self.encoder.latent_dim

    @torch.no_grad()
    def set_output_template(self, template: Tensor, gain: float = 0.1) -> None:
        """Start the decoder at ``template [P]``: its last bias becomes the (scaled)
        template and its last weight is shrunk by ``gain``, so that every latent
        initially decodes to about ``template`` and training learns corrections."""
        last = self.decoder[-1]
        if not isinstance(last, nn.Linear):
            raise SymmergeError("the decoder's last layer must be linear to take a template")
        template = self.spec.check_params(template.reshape(-1).to(last.bias))
        last.bias.copy_(self._standardized(template) if self.decode_standardized else template)
        last.weight.mul_(gain)

    def _standardized(self, params: Tensor) -> Tensor:
        shift = 0.0 if self.param_shift is None else self.param_shift.to(params.dtype)
        return (params - shift) / self.param_scale.to(params.dtype)

    def canonical(self, params: Tensor) -> Tensor:
        """``params [B, P]`` as the encoder sees them: phase-canonicalized with
        ``phase_canonical``, else unchanged."""
        return canonicalize_phase(self.spec, params) if self.phase_canonical else params

    def graph(self, params: Tensor) -> Batch:
        """The encoder's input for ``params [B, P]``: the graph batch of the standardized
        (and, with ``phase_canonical``, phase-canonical) parameters (cached template, index
        gathers), with the probe features appended to the node features when the encoder
        takes them."""
        params = self.canonical(params)
        scaled = self._standardized(params)
        graph = params_to_graph(self.spec, scaled, input_node_value=self.input_node_value)
        if self.probe_inputs is not None:
            probes = probe_node_features(self.spec, params, self.probe_inputs.to(params.dtype))
            per_node = self.probe_scale.to(params.dtype)[graph.node_layer].unsqueeze(1)
            graph.x = torch.cat([graph.x, probes / per_node], dim=1)
        return graph

    def encode_graph(self, graph: Batch) -> Tensor:
        return self.latent_norm(self.encoder(graph))

    def encode(self, params: Tensor) -> Tensor:
        """``z [B, latent_dim]``. Always in full precision, mixed precision or not: the
        invariance of the latent holds to the float32 tolerance, not to bfloat16's."""
        with float32_region(params):
            return self.encode_graph(self.graph(params))

    @torch.no_grad()
    def recompute_latent_stats(self, batches: Iterable[Tensor]) -> None:
        """Set the latent norm's statistics to those of the networks in ``batches``
        (``[B, P]`` each); a no-op without ``latent_norm``."""
        norm = self.latent_norm
        if not isinstance(norm, nn.BatchNorm1d):
            return
        was_training = self.training
        self.eval()
        norm.reset_running_stats()
        norm.train()  # only the norm: it accumulates while the encoder runs in eval mode
        for params in batches:
            if params.shape[0] > 1:
                self.encode(params)
        self.train(was_training)

    def decode(self, z: Tensor) -> Tensor:
        """``[B, P]`` in the spec's flat order."""
        out = self.decoder(z)
        if not self.decode_standardized:
            return out
        out = out * self.param_scale.to(z.dtype)
        return out if self.param_shift is None else out + self.param_shift.to(z.dtype)

    def forward(self, params: Tensor) -> Tensor:
        return self.decode(self.encode(params))


def build_encoder(spec: WeightSpaceSpec, config: EncoderConfig) -> nn.Module:
    """ScaleGMN (``sign``/``scale``/``permutation``) or PNA (``pna``) for ``spec``'s I/O
    signature; ``mode: auto`` takes the spec's symmetry."""
    mode = resolve_mode(config, spec)
    tpl = graph_template(spec)
    depth = spec.num_hidden if config.max_hidden_layers is None else config.max_hidden_layers
    if depth < spec.num_hidden:
        raise SymmergeError(
            f"max_hidden_layers={depth} is smaller than the {spec.num_hidden} hidden layers "
            f"of {spec.describe()}"
        )
    sizes = {"n_in": tpl.n_in, "n_out": tpl.n_out, "edge_dim": tpl.edge_dim,
             "max_hidden_layers": depth}
    if mode == "pna":
        return PNAEncoder(config, deg=tpl.in_degree_histogram(), **sizes)
    return ScaleGMNEncoder(config, mode=mode, **sizes)


def build_autoencoder(
    spec: WeightSpaceSpec, encoder: EncoderConfig, decoder_widths: Sequence[int] = (2, 4)
) -> Autoencoder:
    """Encoder from ``encoder``; decoder hidden widths ``w * d_hidden`` for ``decoder_widths``."""
    if any(w <= 0 for w in decoder_widths):
        raise SymmergeError(f"decoder widths must be positive, got {list(decoder_widths)}")
    enc = build_encoder(spec, encoder)
    hidden = [int(w) * encoder.d_hidden for w in decoder_widths]
    dec = MLPDecoder(enc.latent_dim, spec.num_params, hidden)
    return Autoencoder(spec, enc, dec, input_node_value=encoder.input_node_value,
                       latent_norm=encoder.latent_norm, probe_points=encoder.probe_points,
                       standardize=encoder.standardize,
                       decode_standardized=encoder.decode_standardized,
                       phase_canonical=encoder.phase_canonical)
