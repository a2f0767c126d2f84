"""Function-space losses of the autoencoder (orbit-agnostic, never a raw parameter MSE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.stats import kendalltau
from torch import Tensor, nn

from symmerge.errors import SymmergeError
from symmerge.specs import CNNSpec, SirenSpec, WeightSpaceSpec
from symmerge.utils.device import float32_region
from symmerge.utils.seed import draw_device


class RenderLoss(nn.Module):
    """MSE between the renders of decoded and original SIRENs.

    Original renders are computed once per zoo and cached (``targets [N, R, R]``),
    so a training step renders only the decoded networks (one batched pass). Renders
    run in float32 under mixed precision: bfloat16 phases ``w0 * z`` are off by up to
    ~0.1 rad at ``w0 = 30``, which ruins the images.
    """

    def __init__(self, spec: SirenSpec, resolution: int = 28) -> None:
        super().__init__()
        if not isinstance(spec, SirenSpec):
            raise SymmergeError(f"the render loss needs a SIREN zoo, got {spec.describe()}")
        self.spec = spec
        self.resolution = resolution

    @torch.no_grad()
    def render_targets(self, params: Tensor, batch_size: int = 4096) -> Tensor:
        """Renders ``[N, R, R]`` of a zoo's networks (computed in chunks)."""
        return torch.cat(
            [self.spec.render(p, self.resolution) for p in params.split(batch_size)]
        )

    def forward(self, decoded: Tensor, targets: Tensor) -> Tensor:
        with float32_region(decoded):
            return F.mse_loss(self.spec.render(decoded.float(), self.resolution), targets)


def distillation_loss(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """``T^2 KL(softmax(t/T) || softmax(s/T))`` averaged over all (network, image) rows."""
    t = temperature
    s = F.log_softmax(student.reshape(-1, student.shape[-1]) / t, dim=-1)
    p = F.log_softmax(teacher.reshape(-1, teacher.shape[-1]) / t, dim=-1)
    return F.kl_div(s, p, log_target=True, reduction="batchmean") * t * t


class DistillationLoss(nn.Module):
    """Knowledge distillation between original and decoded CNN logits.

    Each call draws a fresh random batch of *training* images (on the images' device,
    or the generator's); held-out test images are only used by
    :func:`cnn_accuracy_report`. The images are a buffer: they follow the module's device.
    """

    def __init__(
        self, spec: CNNSpec, train_images: Tensor, *, temperature: float = 0.6,
        images_per_step: int = 128,
    ) -> None:
        super().__init__()
        if not isinstance(spec, CNNSpec):
            raise SymmergeError(f"the distillation loss needs a CNN zoo, got {spec.describe()}")
        self.spec = spec
        self.temperature = temperature
        self.images_per_step = images_per_step
        self.register_buffer("train_images", train_images, persistent=False)

    def forward(
        self, decoded: Tensor, original: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        n, dev = self.train_images.shape[0], self.train_images.device
        idx = torch.randint(0, n, (min(self.images_per_step, n),), generator=generator,
                            device=draw_device(generator, dev))
        x = self.train_images[idx.to(dev)]
        with torch.no_grad():
            teacher = self.spec.forward(original, x)
        return distillation_loss(self.spec.forward(decoded, x), teacher, self.temperature)


@torch.no_grad()
def accuracy(spec: WeightSpaceSpec, params: Tensor, images: Tensor, labels: Tensor,
             batch_size: int = 256) -> Tensor:
    """Accuracy ``[B]`` of each network on ``(images, labels)``, on ``params``' device
    (images and labels are moved there batch by batch)."""
    correct = torch.zeros(params.shape[0], dtype=torch.long, device=params.device)
    for x, y in zip(images.split(batch_size), labels.split(batch_size), strict=True):
        pred = spec.forward(params, x).argmax(-1)  # [B, n]
        correct += (pred == y.to(pred.device)).sum(-1)
    return (correct.double() / labels.shape[0]).float()


def cnn_accuracy_report(
    spec: CNNSpec, original: Tensor, decoded: Tensor, images: Tensor, labels: Tensor
) -> dict[str, float]:
    """Decoded-vs-original accuracy on held-out images: means, L1 error and Kendall tau."""
    acc_o = accuracy(spec, original, images, labels).cpu()
    acc_d = accuracy(spec, decoded, images, labels).cpu()
    tau = float("nan")
    if acc_o.numel() > 1 and acc_o.std() > 0 and acc_d.std() > 0:
        tau = float(kendalltau(acc_o.numpy(), acc_d.numpy()).statistic)
    return {
        "acc_original": float(acc_o.mean()),
        "acc_decoded": float(acc_d.mean()),
        "acc_l1": float((acc_o - acc_d).abs().mean()),
        "acc_kendall_tau": tau,
    }
