"""The methods: one entry each. This is the only place that names them; the CLI's
choices, :func:`symmerge.merge.merge`, :func:`symmerge.canon.make_canonicalizer` and the
experiments read it. Adding a method is adding one :class:`Method` here."""

from __future__ import annotations

from dataclasses import replace

from symmerge.canon.core import AECanonicalizer, AELiftCanonicalizer, SortCanonicalizer
from symmerge.methods.base import ALL, Method, MethodInputs
from symmerge.methods.frames import Canonical, Latent, Matched, Raw


def _sort(i: MethodInputs) -> Canonical:
    return Canonical(SortCanonicalizer(i.spec, batch_size=i.batch_size, device=i.device))


def _ae(role: str):
    def build(i: MethodInputs) -> Canonical:
        return Canonical(AECanonicalizer(i.spec, i.model(role), batch_size=i.batch_size,
                                         device=i.device))
    return build


def _latent(role: str):
    def build(i: MethodInputs) -> Latent:
        return Latent(AECanonicalizer(i.spec, i.model(role), batch_size=i.batch_size,
                                      device=i.device))
    return build


def _lift(i: MethodInputs) -> Canonical:
    return Canonical(AELiftCanonicalizer(i.spec, i.model("run"), matching=i.matching,
                                         batch_size=i.batch_size, device=i.device))


REGISTRY: tuple[Method, ...] = (
    Method(
        "naive", "the networks as they are (plain average, straight line)",
        build=lambda i: Raw(), exact=True, uses=frozenset({"merge", "interpolate"}),
        color="#7f7f7f", reference=True, default_of=frozenset({"merge"}),
    ),
    Method(
        "wm", "weight matching with the networks' own symmetry (signs or scales, Git "
              "Re-Basin extended)",
        build=lambda i: Matched(i.spec, i.matching, i.rounds), exact=True,
        uses=frozenset({"merge", "interpolate"}), color="#1f77b4",
    ),
    Method(
        "wm-perm", "weight matching over permutations only (the paper's baseline)",
        build=lambda i: Matched(i.spec, replace(i.matching, mode="permutation"), i.rounds),
        exact=True, uses=frozenset({"interpolate"}), color="#17becf",
        default_for=frozenset({"cnn"}),
    ),
    Method(
        "sort", "exact canonical form, no learning: fixed signs / scales, sorted neurons",
        build=_sort, exact=True, uses=ALL, color="#2ca02c", default_of=frozenset({"canonicalize"}),
    ),
    Method(
        "ae", "the ScaleGMN autoencoder's reconstruction (lossy)",
        build=_ae("run"), needs=frozenset({"run"}), exact=False, uses=ALL, color="#d62728",
    ),
    Method(
        "ae-latent", "interpolation in the ScaleGMN autoencoder's latent space, decoded",
        build=_latent("run"), needs=frozenset({"run"}), exact=False,
        uses=frozenset({"interpolate"}), color="#ff7f0e",
    ),
    Method(
        "ae-lift", "each network matched to its decoded ScaleGMN template (exact)",
        build=_lift, needs=frozenset({"run"}), exact=True, uses=ALL, color="#9467bd",
    ),
    Method(
        "pna-ae", "the permutation-only (PNA) autoencoder's reconstruction (lossy)",
        build=_ae("pna_run"), needs=frozenset({"pna_run"}), exact=False,
        uses=frozenset({"interpolate"}), color="#8c564b",
    ),
    Method(
        "pna-ae-latent", "interpolation in the permutation-only autoencoder's latent space",
        build=_latent("pna_run"), needs=frozenset({"pna_run"}), exact=False,
        uses=frozenset({"interpolate"}), color="#e377c2", default_for=frozenset(),
    ),
)
