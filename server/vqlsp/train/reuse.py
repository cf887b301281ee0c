"""How local an edit stays: rows changed per layer, from two dense VQ forwards.

A quick stand-in for ``vqlsp bench engine`` that needs no incremental session,
used by training to compare configurations (and on a GPU, where the engine's
wall time is not what we ship). It counts what the engine would recompute
(DESIGN.md, "The incremental algorithm"): a row is *changed* at layer l if its
input to l changed (it was edited, or changed at an earlier layer) or one of its
head codes at l flipped; changed rows stay changed. With position ids from the
``stable`` policy, surviving rows keep their ids, so only the edited row starts
out changed. ``row_work_ratio`` = (layers x rows) / (changed row-layers), the
engine's ops ratio without the (cheap) attention-accumulator updates.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence

import torch

from ..engine.edits import TokenEdit, apply_edits
from ..engine.plan import EditPlan
from ..engine.positions import ExactPositions, StablePositions
from ..model.transformer import VQTransformer


def random_atomic_edit(n: int, pool: Sequence[int], rng: random.Random) -> TokenEdit:
    """Insert, delete or replace one token at a uniformly random place (as ``bench.traces.atomic_trace``)."""
    kind = rng.choice(("insert", "delete", "replace"))
    if kind == "insert":
        at = rng.randint(0, n)
        return TokenEdit(at, at, (rng.choice(pool),))
    at = rng.randrange(n)
    return TokenEdit(at, at + 1, () if kind == "delete" else (rng.choice(pool),))


@torch.no_grad()
def changed_rows_per_layer(
    model: VQTransformer, ids: Sequence[int], edit: TokenEdit, policy: str = "stable"
) -> list[int]:
    """Rows the engine would recompute at each layer for ``edit`` applied to ``ids``."""
    plan = EditPlan.build(len(ids), [edit])
    new_ids = apply_edits(ids, [edit])
    old_pos = torch.arange(len(ids))
    rule = StablePositions(max_drift=10**9) if policy == "stable" else ExactPositions()
    new_pos, _ = rule.update(old_pos, plan)
    dev = model.device
    old = model(torch.tensor([list(ids)], device=dev), old_pos[None].to(dev), vq=True)
    new = model(torch.tensor([new_ids], device=dev), new_pos[None].to(dev), vq=True)
    # which new row each surviving old row became (-1: the row is new)
    source = torch.full((len(new_ids),), -1, dtype=torch.long)
    for seg in plan.kept:
        source[seg.new_start : seg.new_start + len(seg)] = torch.arange(seg.old_start, seg.old_end)
    changed = (source < 0) | (new_pos != old_pos[source.clamp_min(0)])  # new rows; moved ids (exact policy)
    kept = (source >= 0).to(dev)
    src = source.clamp_min(0).to(dev)
    changed = changed.to(dev)
    out = []
    for old_codes, new_codes in zip(old.codes, new.codes):
        flipped = kept & (new_codes[0] != old_codes[0][src]).any(-1)
        changed = changed | flipped
        out.append(int(changed.sum()))
    return out


def reuse_profile(
    model: VQTransformer, docs: Sequence[Sequence[int]], edits: int, *, seed: int = 0, policy: str = "stable"
) -> dict:
    """Median row-work ratio and mean rows changed per layer over ``edits`` random atomic edits."""
    rng = random.Random(seed)
    per_edit, ratios = [], []
    for k in range(edits):
        ids = list(docs[k % len(docs)])
        counts = changed_rows_per_layer(model, ids, random_atomic_edit(len(ids), ids, rng), policy)
        per_edit.append(counts)
        ratios.append(len(counts) * len(ids) / max(1, sum(counts)))
    layers = list(zip(*per_edit))
    return {
        "edits": edits,
        "tokens": len(docs[0]),
        "policy": policy,
        "row_work_ratio_median": statistics.median(ratios),
        "rows_changed_per_layer_mean": [round(statistics.fmean(r), 1) for r in layers],
        "rows_changed_last_layer_median": statistics.median(layers[-1]),
    }
