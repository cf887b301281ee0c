"""Vector quantization of attention outputs: product quantization per head.

Each (layer, head) has a codebook of K vectors of size d_head. A head's
attention output o is replaced by its nearest code c. An edit elsewhere in the
document moves o a little; if the move is smaller than the row's *margin*
(half the gap between the distances to the nearest and second-nearest code) the
code cannot flip and the row's downstream computation is reused — this is what
makes the transformer incrementally computable (Sharir & Anandkumar, arXiv
2307.14988). Training uses the straight-through estimator and the VQ-VAE
commitment loss (van den Oord et al., arXiv 1711.00937).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import native


@dataclass
class Quantized:
    """Result of quantizing a (..., H, Dh) tensor of attention outputs."""

    values: torch.Tensor  # (..., H, Dh) codes' vectors; gradients pass straight through to the input
    codes: torch.Tensor  # (..., H) long, index of the nearest code
    margins: torch.Tensor  # (..., H) half the gap between nearest and second-nearest distance
    loss: torch.Tensor  # scalar commitment + codebook loss (0 when not training)


def squared_distances(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """||x - c||^2 for every code: x (..., H, Dh), codebook (H, K, Dh) -> (..., H, K)."""
    cross = torch.einsum("...hd,hkd->...hk", x, codebook)
    return (x.pow(2).sum(-1, keepdim=True) - 2 * cross + codebook.pow(2).sum(-1)).clamp_min(0)


def nearest_codes(x: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest code index and margin per head: x (..., H, Dh) -> codes (..., H), margins (..., H).

    On the CPU (float32, no gradient) in one pass of a C kernel (``native``) when one could be
    built, whose result for a row depends on that row alone (the dense forward and the engine
    search different row sets); elsewhere, without a compiler, or while the forward is traced
    (``onnx_export.py``: a tracer cannot see into native code), in PyTorch ops."""
    if _native_search(x, codebook):
        return native.nearest_codes(x, codebook)
    dist2 = squared_distances(x, codebook)
    if codebook.shape[1] == 1:
        codes = torch.zeros(dist2.shape[:-1], dtype=torch.long, device=x.device)
        return codes, torch.full(dist2.shape[:-1], float("inf"), device=x.device, dtype=x.dtype)
    two, codes = dist2.topk(2, dim=-1, largest=False)
    d = two.sqrt()
    return codes[..., 0], (d[..., 1] - d[..., 0]) / 2


def _native_search(x: torch.Tensor, codebook: torch.Tensor) -> bool:
    if x.device.type != "cpu" or not x.dtype == codebook.dtype == torch.float32 or torch.jit.is_tracing():
        return False
    return not (torch.is_grad_enabled() and (x.requires_grad or codebook.requires_grad)) and native.available()


class VectorQuantizer(nn.Module):
    """One codebook per head: ``codebook`` is (H, K, Dh)."""

    def __init__(self, n_heads: int, d_head: int, codebook_size: int, commitment: float = 0.25):
        super().__init__()
        self.commitment = commitment
        self.codebook = nn.Parameter(torch.randn(n_heads, codebook_size, d_head) * d_head**-0.5)

    @property
    def codebook_size(self) -> int:
        return self.codebook.shape[1]

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Code vectors for indices: codes (..., H) -> (..., H, Dh)."""
        heads = torch.arange(self.codebook.shape[0], device=codes.device)
        return self.codebook[heads, codes]

    def forward(self, x: torch.Tensor) -> Quantized:
        codes, margins = nearest_codes(x.detach(), self.codebook.detach())
        q = self.lookup(codes)
        if torch.is_grad_enabled() and (x.requires_grad or self.codebook.requires_grad):
            # VQ-VAE: pull codes to the outputs, and the outputs (weighted) to their codes.
            loss = F.mse_loss(q, x.detach()) + self.commitment * F.mse_loss(x, q.detach())
            values = x + (q - x).detach()  # straight-through estimator
        else:
            loss = x.new_zeros(())
            values = q
        return Quantized(values, codes, margins, loss)


@torch.no_grad()
def kmeans_codebook(
    samples: torch.Tensor, k: int, iters: int = 25, seed: int = 0, chunk: int = 16384
) -> torch.Tensor:
    """Fit one codebook per head by k-means (k-means++ seeding, Lloyd iterations).

    samples: (N, H, Dh) captured attention outputs. Returns (H, K, Dh). Empty
    clusters are re-seeded with the points farthest from their codes.
    """
    n, h, d = samples.shape
    if n < k:
        raise ValueError(f"k-means needs at least K={k} samples, got {n}")
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = samples.transpose(0, 1).float().contiguous()  # (H, N, Dh)
    centers = torch.empty(h, k, d, device=x.device)
    for head in range(h):
        centers[head] = _kmeans_pp(x[head], k, g)
    for _ in range(iters):
        assign, dist2 = _assign(x, centers, chunk)  # (H, N)
        sums = torch.zeros_like(centers).scatter_add_(1, assign.unsqueeze(-1).expand(-1, -1, d), x)
        counts = torch.zeros(h, k, device=x.device).scatter_add_(1, assign, torch.ones_like(dist2))
        centers = torch.where(counts.unsqueeze(-1) > 0, sums / counts.clamp_min(1).unsqueeze(-1), centers)
        for head, code in (counts == 0).nonzero().tolist():
            far = dist2[head].argmax()
            centers[head, code] = x[head, far]
            dist2[head, far] = 0
    return centers


def _assign(x: torch.Tensor, centers: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest center per point, in chunks: x (H, N, Dh) -> assign (H, N), dist2 (H, N)."""
    assigns, dists = [], []
    c2 = centers.pow(2).sum(-1).unsqueeze(1)  # (H, 1, K)
    for part in x.split(chunk, dim=1):
        d2 = part.pow(2).sum(-1, keepdim=True) - 2 * part @ centers.transpose(1, 2) + c2
        best, idx = d2.min(-1)
        assigns.append(idx)
        dists.append(best.clamp_min(0))
    return torch.cat(assigns, 1), torch.cat(dists, 1)


def _kmeans_pp(x: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    """k-means++ seeding for one head: x (N, Dh) -> (K, Dh)."""
    n = x.shape[0]
    first = torch.randint(n, (1,), generator=g).item()
    centers = [x[first]]
    closest = (x - x[first]).pow(2).sum(-1)
    for _ in range(1, k):
        weights = closest.cpu().double()
        if weights.sum() <= 0:
            idx = torch.randint(n, (1,), generator=g).item()
        else:
            idx = torch.multinomial(weights, 1, generator=g).item()
        centers.append(x[idx])
        closest = torch.minimum(closest, (x - x[idx]).pow(2).sum(-1))
    return torch.stack(centers)


def relative_quantization_error(samples: torch.Tensor, codebook: torch.Tensor) -> float:
    """||x - q(x)||^2 / ||x||^2 over samples (N, H, Dh): the fraction of signal VQ loses."""
    codes, _ = nearest_codes(samples, codebook)
    heads = torch.arange(codebook.shape[0], device=codes.device)
    err = (samples - codebook[heads, codes]).pow(2).sum()
    return (err / samples.pow(2).sum().clamp_min(1e-12)).item()
