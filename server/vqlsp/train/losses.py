"""Losses and batch transforms of VQ-aware fine-tuning (``finetune.py``).

* ``distillation``: the VQ student's final states and next-token logits against
  the dense (VQ-off) teacher's, so quantization costs the heads no accuracy.
* ``margin_loss``: a hinge that widens each row's code margin (half the gap
  between its nearest and second-nearest code, as the engine measures it) to at
  least ``gamma`` times the layer's typical output norm.
* ``flip_loss``: run a batch and a copy with one token replaced; for every other
  row, penalise the part of the pre-VQ attention output's move that would flip
  its code (move - margin + gamma, hinged), plus a small pull of the move itself.
  This is the quantity the engine's reuse depends on (Sharir & Anandkumar,
  arXiv 2307.14988: an edit only costs the rows whose codes flip).
* ``jittered_positions``: position ids with random gaps and duplicates, as the
  engine's ``stable`` policy produces after insertions and deletions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model.vq import squared_distances


def jittered_positions(
    batch: int, length: int, *, p_duplicate: float, p_gap: float, max_gap: int, generator: torch.Generator
) -> torch.Tensor:
    """Non-decreasing ids (B, T) from 0: each step repeats (p_duplicate), skips up to max_gap (p_gap) or is +1."""
    u = torch.rand(batch, length - 1, generator=generator)
    gaps = torch.randint(2, max_gap + 1, (batch, length - 1), generator=generator)
    step = torch.where(u < p_duplicate, 0, torch.where(u < p_duplicate + p_gap, gaps, 1))
    return torch.cat([torch.zeros(batch, 1, dtype=torch.long), step.cumsum(1)], 1)


def replaced_copy(
    ids: torch.Tensor, *, generator: torch.Generator, low: float = 0.0, high: float = 0.75
) -> tuple[torch.Tensor, torch.Tensor]:
    """A copy of ids (B, T) with one token per row replaced by another token of the batch; and where."""
    b, t = ids.shape
    at = (torch.rand(b, generator=generator) * (high - low) * t + low * t).long().clamp(0, t - 1).to(ids.device)
    donors = ids.flatten()[torch.randint(ids.numel(), (b,), generator=generator).to(ids.device)]
    edited = ids.clone()
    edited[torch.arange(b, device=ids.device), at] = donors
    return edited, at


def distillation(
    student_hidden: torch.Tensor,
    teacher_hidden: torch.Tensor,
    student_logits: torch.Tensor | None = None,
    teacher_logits: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(relative MSE of final states, KL(teacher || student) of next-token distributions)."""
    hidden = (student_hidden.float() - teacher_hidden.float()).pow(2).sum(-1).mean() / teacher_hidden.float().pow(
        2
    ).sum(-1).mean().clamp_min(1e-12)
    if student_logits is None or teacher_logits is None:
        return hidden, hidden.new_zeros(())
    s = F.log_softmax(student_logits.float() / temperature, -1)
    t = F.log_softmax(teacher_logits.float() / temperature, -1)
    kl = F.kl_div(s.flatten(0, -2), t.flatten(0, -2), log_target=True, reduction="batchmean") * temperature**2
    return hidden, kl


def code_margins(o: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Differentiable margins (d2 - d1) / 2 of outputs o (..., H, Dh) against codebook (H, K, Dh).

    Always in float32, also under autocast: margins are small differences of large distances.
    """
    with torch.autocast(o.device.type, enabled=False):
        d = (squared_distances(o.float(), codebook.float()) + 1e-9).sqrt()  # (..., H, K)
    two = d.topk(2, dim=-1, largest=False).values
    return (two[..., 1] - two[..., 0]) / 2


def layer_scale(o: torch.Tensor) -> torch.Tensor:
    """Typical norm of a layer's head outputs (detached): the unit margins are measured in."""
    return o.detach().float().norm(dim=-1).mean().clamp_min(1e-6)


def margin_loss(attn: list[torch.Tensor], codebooks: list[torch.Tensor], gamma: float) -> torch.Tensor:
    """Mean over layers of relu(gamma - margin / scale), averaged over rows and heads."""
    total = attn[0].new_zeros((), dtype=torch.float32)
    for o, cb in zip(attn, codebooks):
        total = total + F.relu(gamma - code_margins(o, cb) / layer_scale(o)).mean()
    return total / max(1, len(attn))


def flip_loss(
    attn: list[torch.Tensor],
    attn_edited: list[torch.Tensor],
    codebooks: list[torch.Tensor],
    at: torch.Tensor,
    *,
    gamma: float = 0.02,
    drift_weight: float = 0.1,
) -> torch.Tensor:
    """Penalise code flips an edit at ``at`` (B,) causes in the other rows, over layers.

    attn / attn_edited: per layer (B, T, H, Dh) pre-VQ outputs of the batch and its edited copy.
    """
    b, t = attn[0].shape[:2]
    rows = torch.arange(t, device=attn[0].device)
    others = (rows[None] > at.to(rows.device)[:, None]).float()  # (B, T): rows the edit can reach
    count = others.sum().clamp_min(1) * attn[0].shape[2]
    total = attn[0].new_zeros((), dtype=torch.float32)
    for o, o2, cb in zip(attn, attn_edited, codebooks):
        scale = layer_scale(o)
        move = (o2.float() - o.float()).norm(dim=-1) / scale  # (B, T, H)
        margin = code_margins(o, cb) / scale
        hinge = F.relu(move - margin + gamma)
        total = total + ((hinge + drift_weight * move) * others[..., None]).sum() / count
    return total / max(1, len(attn))
