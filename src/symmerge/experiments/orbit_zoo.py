"""Published orbits as the orbits of the orbit experiments.

The paper's orbit datasets (imported with ``symmerge zoo import dwsnets ORBIT_FOLDER``)
hold transformed copies of one INR per image: ``image_index`` (and ``is_test``) name the
image, the metric ``orbit_member`` the member ``k``. :func:`load_orbit_zoo` groups such a
zoo by image (one orbit each), orders every orbit by ``orbit_member`` and checks that its
members compute one function: every member's render must lie within
:data:`ORBIT_ATOL` of the first member's, else the zoo is refused (an experiment on
networks that are not one orbit would measure something else without saying so).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from symmerge.errors import SymmergeError
from symmerge.experiments.common import open_zoo
from symmerge.experiments.results import OrbitSummary
from symmerge.limits import MAX_ORBIT, check_range
from symmerge.specs import SirenSpec, WeightSpaceSpec
from symmerge.symmetry import TRANSFORMS
from symmerge.zoo import Zoo

#: the metric of an imported orbit zoo that numbers the members of each orbit
ORBIT_METRIC = "orbit_member"
#: largest pixel difference (28×28 render, pixels in [0, 1]) allowed between two members of
#: one orbit: float32 rounding of exact signed permutations stays below 1e-5, while the
#: experiment's own perturbation (std 0.005 on every weight) moves pixels by tenths
ORBIT_ATOL = 1e-3
#: the resolution of the function check (MNIST's)
CHECK_RESOLUTION = 28


@dataclass(frozen=True)
class PublishedOrbit:
    """One orbit: the zoo rows of its members in ``orbit_member`` order, their member
    numbers, the image (``image_index``, test or training split) and the label."""

    rows: Tensor
    members: Tensor
    image_index: int
    is_test: bool | None
    label: int

    def __len__(self) -> int:
        return int(self.rows.numel())

    def describe(self) -> str:
        """E.g. ``test image 3665 (label 6, 512 members)``."""
        return self.summary().describe()

    def summary(self) -> OrbitSummary:
        """What results record of this orbit."""
        return OrbitSummary(self.image_index, self.is_test, self.label, len(self),
                            int(self.members[0]), tuple(self.rows.tolist()))


@dataclass(frozen=True)
class OrbitZoo:
    """A checked orbit zoo: its orbits (by image) and the largest render difference found
    between two members of one orbit (``max_deviation``, pixels)."""

    zoo: Zoo
    orbits: tuple[PublishedOrbit, ...]
    max_deviation: float

    @property
    def spec(self) -> WeightSpaceSpec:
        return self.zoo.spec

    def params(self, orbit: PublishedOrbit) -> Tensor:
        """The members ``[K, P]`` (float32) of ``orbit``, in member order."""
        return self.zoo.get_params(orbit.rows).float()

    def select(self, count: int | None, generator: torch.Generator) -> list[PublishedOrbit]:
        """All orbits (``count=None``), or ``count`` of them drawn with ``generator``, in
        zoo order."""
        n = len(self.orbits)
        if count is None:
            return list(self.orbits)
        if count < 1 or count > n:
            raise SymmergeError(
                f"asked for {count} orbits, but orbit zoo {self.zoo.name} holds {n}"
                + ("" if count < 1 else "; ask for fewer")
            )
        order = torch.randperm(n, generator=generator, device=generator.device)
        picked = torch.sort(order[:count]).values
        return [self.orbits[int(i)] for i in picked]


def _groups(zoo: Zoo) -> list[PublishedOrbit]:
    """The orbits of ``zoo`` by image, each in ``orbit_member`` order; refused (naming what
    is missing or wrong) unless the zoo is laid out as an imported orbit zoo."""
    if zoo.image_index is None or ORBIT_METRIC not in zoo.metric_names:
        missing = "image_index" if zoo.image_index is None else f"metric {ORBIT_METRIC!r}"
        raise SymmergeError(
            f"{zoo.name} is not an orbit zoo (no {missing}): import the paper's orbit folder "
            "with `symmerge zoo import dwsnets ORBIT_FOLDER --out ORBIT_ZOO`"
        )
    member = zoo.metric(ORBIT_METRIC).double()
    if not bool((member == member.round()).all()) or float(member.min()) < 0:
        raise SymmergeError(f"{zoo.name}: {ORBIT_METRIC} must hold member numbers 0, 1, ...")
    member = member.long()
    is_test = zoo.metric("is_test") > 0.5 if "is_test" in zoo.metric_names else None
    split = torch.zeros_like(zoo.image_index) if is_test is None else is_test.long()
    labels = zoo.labels
    orbits = []
    for s, image in torch.unique(torch.stack([split, zoo.image_index], 1), dim=0).tolist():
        rows = torch.nonzero((split == s) & (zoo.image_index == image)).flatten()
        rows = rows[torch.argsort(member[rows], stable=True)]
        k = member[rows]
        test = None if is_test is None else bool(s)
        where = f"the orbit of {'test ' if test else 'training ' if test is False else ''}" \
                f"image {image} in {zoo.name}"
        dup = k[1:] == k[:-1]
        if bool(dup.any()):
            raise SymmergeError(f"{where} has two members {int(k[1:][dup][0])}")
        if rows.numel() < 2:
            raise SymmergeError(f"{where} has a single member; an orbit needs at least 2")
        lab = labels[rows]
        if bool((lab != lab[0]).any()):
            raise SymmergeError(f"{where} mixes labels {sorted(set(lab.tolist()))}")
        orbits.append(PublishedOrbit(rows, k, int(image), test, int(lab[0])))
    return orbits


def _check_function(zoo: Zoo, orbits: list[PublishedOrbit], atol: float, chunk: int) -> float:
    """The largest pixel difference of any member's render to its orbit's first member's;
    more than ``atol`` is an error naming the member."""
    spec = zoo.spec
    worst = 0.0
    for orbit in orbits:
        ref = None
        for lo in range(0, len(orbit), chunk):
            rows = orbit.rows[lo:lo + chunk]
            img = spec.render(zoo.get_params(rows).float(), CHECK_RESOLUTION)  # type: ignore[attr-defined]
            ref = img[0] if ref is None else ref
            dev = (img - ref).abs().flatten(1).amax(1)
            worst = max(worst, float(dev.max()))
            if float(dev.max()) > atol:
                i = int(dev.argmax())
                raise SymmergeError(
                    f"{zoo.name} is not an orbit: member {int(orbit.members[lo + i])} (row "
                    f"{int(rows[i])}) of {orbit.describe()} renders up to {float(dev[i]):.3g} "
                    f"away from member {int(orbit.members[0])} (tolerance {atol:g}); the "
                    "members of an orbit must compute one function"
                )
    return worst


def load_orbit_zoo(
    orbit_zoo: str | os.PathLike[str] | Zoo,
    *,
    spec: WeightSpaceSpec | None = None,
    holder: str = "the zoo",
    atol: float = ORBIT_ATOL,
    chunk: int = 1024,
) -> OrbitZoo:
    """The orbits of an imported orbit zoo, checked.

    Refused with one :class:`SymmergeError`: a folder (not yet imported), an unreadable
    file, NaN or Inf parameters, a non-SIREN zoo, a zoo
    of another architecture than ``spec`` (the networks of ``holder``), no ``image_index``
    or ``orbit_member``, a repeated member or a single member in an orbit, mixed labels,
    and members whose renders differ by more than ``atol`` from their orbit's first member.
    """
    if not isinstance(orbit_zoo, Zoo) and Path(orbit_zoo).is_dir():
        raise SymmergeError(
            f"{orbit_zoo} is a directory; the orbit experiments take an imported orbit zoo: "
            f"symmerge zoo import dwsnets {orbit_zoo} --out ORBIT_ZOO"
        )
    z = open_zoo(orbit_zoo)
    if not isinstance(z.spec, SirenSpec):
        raise SymmergeError(
            f"orbit zoo {z.name} holds {z.spec.describe()}; published orbits are INRs (SIREN)"
        )
    if spec is not None and z.spec != spec:
        raise SymmergeError(
            f"orbit zoo {z.name} holds {z.spec.describe()}, but {holder} holds "
            f"{spec.describe()}"
        )
    orbits = _groups(z)
    return OrbitZoo(z, tuple(orbits), _check_function(z, orbits, atol, chunk))


def refuse_generation_options(experiment: str, **given: object) -> None:
    """With a published orbit, the options that shape generated orbits (``orbit_size``,
    ``transform``, ...) make no sense: any of ``given`` that is not None is an error."""
    bad = [name for name, value in given.items() if value is not None]
    if bad:
        raise SymmergeError(
            f"{experiment}: {', '.join(bad)} {'shapes' if len(bad) == 1 else 'shape'} the "
            "orbits generated from zoo; with orbit_zoo the orbits are the published ones: "
            f"drop {'it' if len(bad) == 1 else 'them'}", params=(*bad, "zoo", "orbit_zoo"),
        )


def generated_orbit_options(transform: str | None, orbit_size: int | None, default_size: int
                            ) -> tuple[str, int]:
    """(transform, orbit size) of generated orbits: the defaults (``PD``, ``default_size``)
    for None, refused with one :class:`SymmergeError` when unknown or out of range."""
    transform = transform or "PD"
    if transform not in TRANSFORMS:
        raise SymmergeError(
            f"transform must be one of {', '.join(TRANSFORMS)}; got {transform!r}"
        )
    size = default_size if orbit_size is None else orbit_size
    return transform, check_range(size, "orbit_size", 2, MAX_ORBIT)
