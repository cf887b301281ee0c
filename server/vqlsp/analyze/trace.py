"""One instrumented dense pass: what the per-token meters read from a forward.

* per-layer final-normed states (the early-exit probes' features, as
  ``train.features.hidden_by_depth`` computes them);
* per-row MLP activity (``activations.ActivationStats``), when asked;
* per-row learners run, from any MLP module that exposes a ``last_learners``
  tensor of shape (..., T) after its forward (the ACM MLPs' interface: N small
  learners and a per-token gate, arXiv 2312.10193). Models without such MLPs
  give ``learners=None`` and the ACM meter stays off.

Layers up to the model's ``depth`` run as the model runs them (VQ on when the
model's VQ is); layers past an early exit (``layers > depth``) run dense, as the
base model would, so activation statistics can cover the whole network.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from ..model.transformer import VQTransformer
from .activations import ActivationStats

LEARNERS_ATTR = "last_learners"


@dataclass
class Trace:
    hidden: dict[int, torch.Tensor]  # depth -> (B, T, D) final-normed states
    learners: torch.Tensor | None  # (L, B, T) learners run per row and layer (ACM MLPs), else None
    active: torch.Tensor | None  # (L, B, T) share of MLP units active per row (with ``activations``)


def learners_run(mlp: torch.nn.Module, rows_shape: torch.Size) -> torch.Tensor | None:
    """The learners an ACM MLP ran for each row of its last forward (None: not an ACM MLP)."""
    value = getattr(mlp, LEARNERS_ATTR, None)
    if not isinstance(value, torch.Tensor):
        return None
    if value.shape != rows_shape:
        raise ValueError(f"{type(mlp).__name__}.{LEARNERS_ATTR} has shape {tuple(value.shape)}; "
                         f"expected one count per row {tuple(rows_shape)}")
    return value.detach().float()


def has_acm(model: VQTransformer) -> bool:
    """Whether the model's MLPs count learners (checked by a one-token pass)."""
    ids = torch.zeros(1, 1, dtype=torch.long, device=model.device)
    return trace(model, ids, depths=[1], layers=1).learners is not None


@torch.no_grad()
def trace(
    model: VQTransformer,
    ids: torch.Tensor,
    *,
    depths: list[int] | range,
    layers: int | None = None,
    lengths: torch.Tensor | None = None,
    activations: ActivationStats | None = None,
) -> Trace:
    """Run ``layers`` blocks (default: the deepest of ``depths``) over ids (B, T), right-padded
    to ``lengths`` (B,); returns the states after each of ``depths`` and the per-row meters."""
    b, t = ids.shape
    layers = layers or max(depths)
    if not 1 <= layers <= model.cfg.n_layers:
        raise ValueError(f"layers={layers} outside 1..{model.cfg.n_layers}")
    if lengths is None:
        lengths = torch.full((b,), t, device=ids.device)
    mask = torch.arange(t, device=ids.device) < lengths.unsqueeze(1)  # (B, T)
    position_ids = torch.arange(t, device=ids.device).expand_as(ids)
    x = model.embed_rows(ids, position_ids)
    pos = model.positional(position_ids)
    blocks = model.blocks[:layers]
    active: list[torch.Tensor | None] = [None] * layers
    learners: list[torch.Tensor | None] = []
    hidden = {}
    hooks = activations.hooked(blocks, mask, active) if activations is not None else nullcontext()
    with hooks:
        for i, block in enumerate(blocks):
            x, _, _ = block(x, pos, model.cfg.vq.enabled and i < model.cfg.depth)
            learners.append(learners_run(block.mlp, x.shape[:-1]))
            if i + 1 in depths:
                hidden[i + 1] = model.final_rows(x)
    counted = None
    if all(c is not None for c in learners):
        counted = torch.stack(learners)  # type: ignore[arg-type]
    elif any(c is not None for c in learners):
        raise ValueError("only some of the model's MLPs count learners; the ACM meter needs all of them")
    got = [a for a in active if a is not None]
    return Trace(hidden, counted, torch.stack(got) if len(got) == layers else None)
