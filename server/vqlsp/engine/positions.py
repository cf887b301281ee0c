"""Position-id policies under insertion and deletion (DESIGN.md, "Positions under insertion / deletion").

``exact``: position ids are always ``0..n-1``. Inserting or deleting a token
shifts every later id, so every later row changes (learned embeddings) or every
later q/k rotates (RoPE): correct, and it pays the shift.

``stable``: tokens that survive an edit keep their ids; inserted tokens take ids
interpolated between their neighbours' (duplicates allowed when there is no room;
appended tokens continue after the last id). When the drift ``max |id - index|``
exceeds ``max_drift``, or an id would leave a learned table, the policy re-indexes
to ``0..n-1`` (an expensive edit, reported as ``reindexed`` in the stats).

Policies are deterministic, so every strategy that replays the same edits with
the same policy sees the same position ids, and so does the dense reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .plan import EditPlan

DEFAULT_MAX_DRIFT = 128


class PositionPolicy:
    """Maps the old position ids and an edit plan to the new ids."""

    name = "base"

    def update(self, old: torch.Tensor, plan: EditPlan) -> tuple[torch.Tensor, bool]:
        """old (n_old,) long -> new (n_new,) long, and whether everything was re-indexed."""
        raise NotImplementedError


class ExactPositions(PositionPolicy):
    name = "exact"

    def update(self, old: torch.Tensor, plan: EditPlan) -> tuple[torch.Tensor, bool]:
        return torch.arange(plan.new_len, device=old.device), False


@dataclass
class StablePositions(PositionPolicy):
    max_drift: int = DEFAULT_MAX_DRIFT  # re-index when some id is further than this from its index
    max_position: int | None = None  # learned tables: ids must stay below this

    name = "stable"

    def update(self, old: torch.Tensor, plan: EditPlan) -> tuple[torch.Tensor, bool]:
        new = torch.empty(plan.new_len, dtype=torch.long, device=old.device)
        for seg in plan.kept:
            new[seg.new_start : seg.new_start + len(seg)] = old[seg.old_start : seg.old_end]
        for e, s in zip(plan.edits, plan.new_starts):
            m = len(e.new_ids)
            if not m:
                continue
            left = int(new[s - 1]) if s > 0 else -1
            right = int(old[e.end]) if e.end < plan.old_len else None
            if right is None:
                ids = range(left + 1, left + 1 + m)
            else:
                ids = [max(left + ((k + 1) * (right - left)) // (m + 1), 0) for k in range(m)]
            new[s : s + m] = torch.tensor(list(ids), dtype=torch.long)
        if plan.new_len:
            index = torch.arange(plan.new_len, device=old.device)
            drift = int((new - index).abs().max())
            too_far = self.max_position is not None and int(new.max()) >= self.max_position
            if drift > self.max_drift or too_far:
                return index, True
        return new, False


def make_policy(policy: str | PositionPolicy, model_cfg, max_drift: int = DEFAULT_MAX_DRIFT) -> PositionPolicy:
    """A policy object from its name (``exact`` | ``stable``), or the object itself."""
    if isinstance(policy, PositionPolicy):
        return policy
    if policy == "exact":
        return ExactPositions()
    if policy == "stable":
        limit = model_cfg.max_positions if model_cfg.positions == "learned" else None
        return StablePositions(max_drift, limit)
    raise ValueError(f"unknown position policy {policy!r}; choose exact or stable")
