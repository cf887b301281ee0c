"""The baselines the engine is measured against, with the session's interface.

* ``DenseStrategy`` re-runs the whole model after every edit (``VQTransformer.forward``).
* ``PrefixCacheStrategy`` keeps every layer's keys/values and final states, and
  after an edit recomputes every row from the first changed one (first index whose
  token or position id differs) to the end, attending the cached prefix: what
  llama.cpp / vLLM prefix caching give an editor.

Both use the same position policies as the session (so all three compute the same
function of the same ids and position ids) and the same operation counter.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..model.acm import learners_run
from .attention import attend_rows
from .edits import TokenEdit, apply_edits
from .ops import CostModel, OpCounter, causal_pairs, dense_ops
from .plan import EditPlan
from .positions import DEFAULT_MAX_DRIFT, PositionPolicy, make_policy
from .results import Outputs, UpdateStats, head_outputs, pool_hidden, timed_apply


class _Strategy:
    """Token ids, position ids and final states of the current document."""

    def __init__(self, model, position_policy: str | PositionPolicy, max_drift: int):
        self.model = model.eval()
        self.cfg = model.cfg
        self.policy = make_policy(position_policy, self.cfg, max_drift)
        self.cost = CostModel.of(self.cfg)
        self.device = model.embed.weight.device
        self.ids = torch.zeros(0, dtype=torch.long, device=self.device)
        self.pos = torch.zeros(0, dtype=torch.long, device=self.device)
        self.hidden = torch.zeros(0, model.hidden_dim, device=self.device)
        self.last_stats: UpdateStats | None = None

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def token_ids(self) -> list[int]:
        return self.ids.tolist()

    @property
    def position_ids(self) -> torch.Tensor:
        return self.pos

    @torch.no_grad()
    def apply(self, edits: Sequence[TokenEdit]) -> UpdateStats:
        self.last_stats = timed_apply(self.n, edits, self.device, self._apply_plan)
        return self.last_stats

    def _apply_plan(self, plan: EditPlan, stats: UpdateStats) -> None:
        new_ids = torch.tensor(apply_edits(self.ids.tolist(), plan.edits), dtype=torch.long, device=self.device)
        new_pos, stats.reindexed = self.policy.update(self.pos, plan)
        self._update(new_ids, new_pos, stats)
        self.ids, self.pos = new_ids, new_pos

    def _update(self, ids: torch.Tensor, pos: torch.Tensor, stats: UpdateStats) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def outputs(self, spans: Sequence[tuple[int, int]] | None = None, hidden: bool = False) -> Outputs:
        """Like ``IncrementalSession.outputs``; ``hidden`` is this strategy's own tensor, not a copy."""
        h = self.hidden[: self.n]
        return head_outputs(self.model, self.n, pool_hidden(self.model, h), h, spans, hidden)


class DenseStrategy(_Strategy):
    """Re-run the whole model on every edit."""

    def __init__(self, model, token_ids: Sequence[int] = (), position_policy: str | PositionPolicy = "stable",
                 *, max_drift: int = DEFAULT_MAX_DRIFT):
        super().__init__(model, position_policy, max_drift)
        if len(token_ids):
            self.apply([TokenEdit(0, 0, tuple(token_ids))])

    def _update(self, ids: torch.Tensor, pos: torch.Tensor, stats: UpdateStats) -> None:
        n, depth = len(ids), self.cfg.depth
        learners = None
        if n:
            self.hidden = self.model(ids[None], pos[None]).hidden[0]
            learners = [learners_run(block.mlp) for block in self.model.blocks[:depth]]
        else:
            self.hidden = self.hidden[:0]
        stats.ops = dense_ops(self.cost, n, depth, learners=learners)
        stats.rows_changed = [n] * depth


class PrefixCacheStrategy(_Strategy):
    """Reuse the cached keys/values before the first changed row; recompute the rest."""

    def __init__(self, model, token_ids: Sequence[int] = (), position_policy: str | PositionPolicy = "stable",
                 *, max_drift: int = DEFAULT_MAX_DRIFT):
        super().__init__(model, position_policy, max_drift)
        c = self.cfg
        shape = (c.depth, 0, c.n_kv_heads, c.d_head)
        self.k = torch.zeros(shape, device=self.device)
        self.v = torch.zeros(shape, device=self.device)
        if len(token_ids):
            self.apply([TokenEdit(0, 0, tuple(token_ids))])

    def _reserve(self, n: int) -> None:
        cap = self.k.shape[1]
        if n <= cap:
            return
        cap = max(n, 2 * cap, 16)
        for name in ("k", "v"):
            old = getattr(self, name)
            new = old.new_zeros(old.shape[0], cap, *old.shape[2:])
            new[:, : old.shape[1]] = old
            setattr(self, name, new)
        hidden = self.hidden.new_zeros(cap, self.hidden.shape[1])
        hidden[: self.hidden.shape[0]] = self.hidden
        self.hidden = hidden

    def _update(self, ids: torch.Tensor, pos: torch.Tensor, stats: UpdateStats) -> None:
        old_n, n, depth = self.n, len(ids), self.cfg.depth
        same = min(old_n, n)
        differs = (ids[:same] != self.ids[:same]) | (pos[:same] != self.pos[:same])
        first = int(differs.nonzero()[0]) if bool(differs.any()) else same
        self._reserve(n)
        rows = n - first
        learners: list[int | None] = [None] * depth
        if rows:
            model = self.model
            x = model.embed_rows(ids[first:], pos[first:])
            place = model.positional(pos[first:])
            # row first + i sees keys 0 .. first + i: the engine's fused kernel, in chunks of rows
            # (one masked attention over all rows would hold rows x n scores per head)
            row_index, key_index = torch.arange(first, n, device=self.device), torch.arange(n, device=self.device)
            for layer, block in enumerate(model.blocks[:depth]):
                q, k, v = block.qkv(x, place)  # (rows, H|Hkv, Dh)
                self.k[layer, first:n], self.v[layer, first:n] = k, v
                keys, values = self.k[layer, :n].transpose(0, 1), self.v[layer, :n].transpose(0, 1)
                o, _ = attend_rows(q.transpose(0, 1), row_index, keys, values, key_index)
                x = block.finish(x, block.quantize(o.transpose(0, 1)).values)
                learners[layer] = learners_run(block.mlp)
            self.hidden[first:n] = model.final_rows(x)
        ops = OpCounter()
        for layer in range(depth):
            ops.rows(self.cost, qkv=rows, finish=rows, learners=learners[layer])
        ops["attention"] = depth * self.cost.attention(causal_pairs(first, n))
        ops["vq"] = depth * rows * self.cost.vq
        ops["io"] = rows * self.cost.io_proj
        stats.ops = ops
        stats.rows_changed = [rows] * depth
        stats.recomputed = [rows] * depth
