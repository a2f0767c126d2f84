"""The hidden-neuron symmetry group of a weight space, acting on ``[B, P]`` batches.

Per hidden layer, an element holds a permutation ``perm``, multipliers ``mult``
(+-1 for sine/tanh, positive for ReLU) and, for SIRENs, integer phase shifts
``shift``. New neuron ``i`` is old neuron ``j = perm[i]`` transformed as::

    W_h'[i]      = mult[i] * W_h[j]
    b_h'[i]      = mult[i] * (b_h[j] + shift[i] * pi / w0)
    W_{h+1}'[:, i] = W_{h+1}[:, j] * (-1)**shift[i] / mult[i]

which preserves the network's function (sin and tanh are odd, ReLU is
positively homogeneous, sin(z + k pi) = (-1)**k sin z).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from symmerge.errors import SymmergeError
from symmerge.specs.base import WeightSpaceSpec
from symmerge.utils.seed import draw_device


@dataclass(frozen=True)
class GroupElement:
    """A batch of B group elements; one ``[B, n_h]`` tensor per hidden layer and field."""

    perms: tuple[Tensor, ...]
    mults: tuple[Tensor, ...]
    shifts: tuple[Tensor, ...] | None = None

    @property
    def batch_size(self) -> int:
        return self.perms[0].shape[0] if self.perms else 0

    @staticmethod
    def identity(
        spec: WeightSpaceSpec, batch: int, *, dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu", phase: bool = False,
    ) -> GroupElement:
        perms = tuple(
            torch.arange(n, device=device).expand(batch, n).clone() for n in spec.hidden_sizes
        )
        mults = tuple(torch.ones(batch, n, dtype=dtype, device=device) for n in spec.hidden_sizes)
        shifts = (
            tuple(torch.zeros(batch, n, dtype=torch.long, device=device) for n in spec.hidden_sizes)
            if phase else None
        )
        return GroupElement(perms, mults, shifts)

    def _shifts_or_zero(self) -> tuple[Tensor, ...]:
        if self.shifts is not None:
            return self.shifts
        return tuple(torch.zeros_like(p) for p in self.perms)

    def compose(self, first: GroupElement) -> GroupElement:
        """``self o first``: the element that applies ``first``, then ``self``."""
        if len(self.perms) != len(first.perms):
            raise SymmergeError(
                f"cannot compose elements with {len(self.perms)} and {len(first.perms)} "
                "hidden layers"
            )
        if len({self.batch_size, first.batch_size} - {1}) > 1:
            raise SymmergeError(
                f"cannot compose batches of {self.batch_size} and {first.batch_size} elements"
            )
        batch = max(self.batch_size, first.batch_size)
        perms, mults, shifts = [], [], []
        for p2, q2, k2, p1, q1, k1 in zip(
            self.perms, self.mults, self._shifts_or_zero(),
            first.perms, first.mults, first._shifts_or_zero(), strict=True,
        ):
            # a batch of 1 broadcasts (gather does not broadcast by itself)
            p2, q2, k2, p1, q1, k1 = (t.expand(batch, -1) for t in (p2, q2, k2, p1, q1, k1))
            q1g = q1.gather(1, p2)
            perms.append(p1.gather(1, p2))
            mults.append(q2 * q1g)
            # k = k1[p2] + q1[p2] * k2 (phase shifts only exist with sign multipliers)
            shifts.append(k1.gather(1, p2) + torch.sign(q1g).long() * k2)
        has_shift = self.shifts is not None or first.shifts is not None
        return GroupElement(tuple(perms), tuple(mults), tuple(shifts) if has_shift else None)

    def inverse(self) -> GroupElement:
        perms, mults, shifts = [], [], []
        for p, q, k in zip(self.perms, self.mults, self._shifts_or_zero(), strict=True):
            pinv = torch.argsort(p, dim=1)
            qg = q.gather(1, pinv)
            perms.append(pinv)
            mults.append(1.0 / qg)
            shifts.append(-k.gather(1, pinv) * torch.sign(qg).long())
        has_shift = self.shifts is not None
        return GroupElement(tuple(perms), tuple(mults), tuple(shifts) if has_shift else None)

    def apply(self, spec: WeightSpaceSpec, params: Tensor) -> Tensor:
        """Transform ``params [B, P]`` (or ``[P]`` with B = 1); returns a new tensor."""
        single = params.ndim == 1
        if single:
            params = params.unsqueeze(0)
        spec.check_params(params, finite=False)
        b = params.shape[0]
        if len(self.perms) != spec.num_hidden or (self.perms and self.batch_size not in (b, 1)):
            raise SymmergeError(
                f"group element (batch {self.batch_size}, {len(self.perms)} hidden layers) does "
                f"not fit parameters [{b}, {spec.num_hidden} hidden layers]"
            )
        sizes = tuple(p.shape[-1] for p in self.perms)
        if sizes != spec.hidden_sizes:
            raise SymmergeError(
                f"group element acts on hidden sizes {list(sizes)}, the spec has "
                f"{list(spec.hidden_sizes)}"
            )
        if self.shifts is not None and not hasattr(spec, "w0"):
            raise SymmergeError("phase shifts only apply to SIREN networks")
        ws, bs = spec.unflatten(params)
        ws, bs = list(ws), list(bs)
        for h, (perm, mult, shift) in enumerate(
            zip(self.perms, self.mults, self._shifts_or_zero(), strict=True)
        ):
            perm = perm.to(params.device).expand(b, -1)
            mult = mult.to(device=params.device, dtype=params.dtype).expand(b, -1)
            shift = shift.to(params.device).expand(b, -1)
            w, bias, w_next = ws[h], bs[h], ws[h + 1]
            # rows of layer h
            idx = perm.reshape(b, -1, *([1] * (w.ndim - 2))).expand(-1, -1, *w.shape[2:])
            w = w.gather(1, idx) * mult.reshape(b, -1, *([1] * (w.ndim - 2)))
            bias = bias.gather(1, perm)
            if self.shifts is not None:
                # shift in float64 and round once: k * pi / w0 in float32 loses ~|k| ulps
                step = math.pi / spec.w0  # type: ignore[attr-defined]
                wide = torch.promote_types(params.dtype, torch.float64)
                bias = (bias.to(wide) + shift.to(wide) * step).to(params.dtype)
            bias = bias * mult
            # columns of layer h + 1
            tail = [1] * (w_next.ndim - 3)
            idx = perm.reshape(b, 1, -1, *tail).expand(-1, w_next.shape[1], -1, *w_next.shape[3:])
            col = (1.0 - 2.0 * (shift % 2).to(params.dtype)) / mult
            w_next = w_next.gather(2, idx) * col.reshape(b, 1, -1, *tail)
            ws[h], bs[h], ws[h + 1] = w, bias, w_next
        out = spec.flatten(ws, bs)
        return out[0] if single else out


def sample_group_elements(
    spec: WeightSpaceSpec,
    batch: int,
    *,
    permute: bool = True,
    diagonal: bool = True,
    phase: bool = False,
    scale_range: tuple[float, float] = (0.1, 10.0),
    max_shift: int = 1,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> GroupElement:
    """Random group elements on ``device`` (default: the generator's device, else the CPU).

    ``permute``: uniform random permutations; ``diagonal``: random signs (sine,
    tanh) or log-uniform positive scales in ``scale_range`` (ReLU); ``phase``:
    SIREN phase shifts ``k`` uniform in ``[-max_shift, max_shift]``. Numbers are drawn
    on the generator's device and moved once, so a seeded CPU generator gives the same
    elements on every device.
    """
    if phase and spec.activation != "sine":
        raise SymmergeError("phase shifts only exist for SIREN (sine) networks")
    src = draw_device(generator, device)
    dst = src if device is None else torch.device(device)
    perms, mults, shifts = [], [], []
    lo, hi = math.log(scale_range[0]), math.log(scale_range[1])
    for n in spec.hidden_sizes:
        if permute:
            keys = torch.rand(batch, n, generator=generator, device=src)
            perms.append(torch.argsort(keys, dim=1).to(dst))
        else:
            perms.append(torch.arange(n, device=dst).expand(batch, n).clone())
        if not diagonal:
            mults.append(torch.ones(batch, n, dtype=dtype, device=dst))
        elif spec.symmetry == "sign":
            signs = torch.randint(0, 2, (batch, n), generator=generator, device=src)
            mults.append(signs.to(dst, dtype) * 2 - 1)
        else:
            u = torch.rand(batch, n, generator=generator, dtype=torch.float64, device=src)
            mults.append(torch.exp(lo + (hi - lo) * u).to(dst, dtype))
        if phase:
            k = torch.randint(-max_shift, max_shift + 1, (batch, n), generator=generator,
                              device=src)
            shifts.append(k.to(dst))
    return GroupElement(tuple(perms), tuple(mults), tuple(shifts) if phase else None)
