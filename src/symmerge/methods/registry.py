"""The methods: one entry each. This is the only place that names them; the CLI's
choices, :func:`symmerge.merge.merge`, :func:`symmerge.canon.make_canonicalizer` and the
experiments read it. Adding a method is adding one :class:`Method` here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from symmerge.methods.base import ALL, Method, MethodInputs

if TYPE_CHECKING:
    from symmerge.methods.frames import Canonical, Frame, Latent, Matched, Raw, Repaired

# The builders import the frames and canonicalizers when a method is built: those load
# the autoencoders (and torch_geometric), while the CLI reads this registry for its help
# texts at start-up.


def _raw(i: MethodInputs) -> Raw:
    from symmerge.methods.frames import Raw

    return Raw()


def _matched(mode: str | None = None):
    def build(i: MethodInputs) -> Matched:
        from symmerge.methods.frames import Matched

        matching = i.matching if mode is None else replace(i.matching, mode=mode)
        return Matched(i.spec, matching, i.rounds)
    return build


def _repaired(inner: Callable[[MethodInputs], Frame]):
    def build(i: MethodInputs) -> Repaired:
        from symmerge.methods.frames import Repaired

        return Repaired(inner(i), i.spec, i.data)
    return build


def _sort(i: MethodInputs) -> Canonical:
    from symmerge.canon.core import SortCanonicalizer
    from symmerge.methods.frames import Canonical

    return Canonical(SortCanonicalizer(i.spec, batch_size=i.batch_size, device=i.device))


def _ae(role: str):
    def build(i: MethodInputs) -> Canonical:
        from symmerge.canon.core import AECanonicalizer
        from symmerge.methods.frames import Canonical

        return Canonical(AECanonicalizer(i.spec, i.model(role), batch_size=i.batch_size,
                                         device=i.device))
    return build


def _latent(role: str):
    def build(i: MethodInputs) -> Latent:
        from symmerge.canon.core import AECanonicalizer
        from symmerge.methods.frames import Latent

        return Latent(AECanonicalizer(i.spec, i.model(role), batch_size=i.batch_size,
                                      device=i.device))
    return build


def _lift(i: MethodInputs) -> Canonical:
    from symmerge.canon.core import AELiftCanonicalizer
    from symmerge.methods.frames import Canonical

    return Canonical(AELiftCanonicalizer(i.spec, i.model("run"), matching=i.matching,
                                         batch_size=i.batch_size, device=i.device))


REGISTRY: tuple[Method, ...] = (
    Method(
        "naive", "the networks as they are (plain average, straight line)",
        build=_raw, exact=True, uses=frozenset({"merge", "interpolate"}),
        color="#7f7f7f", reference=True,
    ),
    Method(
        "wm", "weight matching with the networks' own symmetry (signs or scales, Git "
              "Re-Basin extended)",
        build=_matched(), exact=True,
        uses=frozenset({"merge", "interpolate"}), color="#1f77b4",
        default_of=frozenset({"merge"}),
    ),
    Method(
        "wm-perm", "weight matching over permutations only (the paper's baseline)",
        build=_matched("permutation"),
        exact=True, uses=frozenset({"interpolate"}), color="#17becf",
        default_for=frozenset({"cnn"}),
    ),
    Method(
        "wm+repair", "weight matching, then REPAIR at every alpha: each hidden neuron's "
                     "pre-activation mean and std on training data reset to the endpoints' "
                     "interpolated ones",
        build=_repaired(_matched()), exact=True, uses=frozenset({"interpolate"}),
        families=frozenset({"mlp", "cnn"}), default_for=frozenset({"cnn"}), color="#bcbd22",
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
