"""Incremental reuse: how many rows the engine recomputes when one token is edited.

The meter replaces the token at a position by another token of the same text
(as the engine benchmark's ``atomic`` trace does, ``bench/traces.py``), reads the
rows changed per layer from the session's ``UpdateStats``, and drops the edit
(it is made on a fork of the session: a copy of its state). An edit at position
i can change at most the n - i rows from i on (attention is causal), so the
comparable figure is the *share* of those rows
recomputed, averaged over layers: 1/(n - i) when only the edited row changes,
1 when every later row does.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..engine.edits import TokenEdit
from ..engine.session import IncrementalSession


@dataclass(frozen=True)
class EditCost:
    position: int
    rows_changed: tuple[int, ...]  # per layer
    rows_after: int  # rows at or after the edit: the most a layer can change

    @property
    def rows_per_layer(self) -> float:
        return sum(self.rows_changed) / len(self.rows_changed)

    @property
    def share(self) -> float:
        """Mean over layers of the share of rows from the edit on that were recomputed."""
        return self.rows_per_layer / self.rows_after


def replacement(ids: Sequence[int], position: int, rng: random.Random) -> int:
    """Another token of the same text for ``position`` (the next id when the text has one token kind)."""
    others = [t for t in set(ids) if t != ids[position]]
    return rng.choice(sorted(others)) if others else ids[position] + 1


def edit_costs(session: IncrementalSession, positions: Sequence[int], seed: int = 0) -> list[EditCost]:
    """Replace each token at ``positions``, one at a time, on a fork of ``session``, and record
    what the engine recomputed. ``session`` itself is left as it was."""
    ids = session.token_ids
    rng = random.Random(seed)
    out = []
    for i in positions:
        if not 0 <= i < len(ids):
            raise ValueError(f"position {i} outside the {len(ids)} tokens")
        stats = session.fork().apply([TokenEdit(i, i + 1, (replacement(ids, i, rng),))])
        out.append(EditCost(i, tuple(stats.rows_changed), len(ids) - i))
    return out


def sample_positions(start: int, end: int, count: int, rng: random.Random) -> list[int]:
    """Up to ``count`` distinct positions in [start, end), evenly spread with a random offset."""
    n = end - start
    if n <= count:
        return list(range(start, end))
    step = n / count
    offset = rng.random() * step
    return sorted({start + int(offset + k * step) for k in range(count)})
