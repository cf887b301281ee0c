"""Exact incremental inference over a VQ transformer (DESIGN.md, "The incremental algorithm").

``IncrementalSession`` keeps a document's per-layer state (``state.py``) and,
for each call of ``apply(edits)``, pushes only what changed through the model.
Per layer l, with X = rows whose input x changed:

1. rows in X (and, RoPE with moved position ids, rows whose id changed) get new
   q, k, v: gather -> norm1 + projections -> scatter;
2. every other row after the first change has its accumulators updated for the
   keys that left and arrived (``attention.update_rows``, O(changed keys) per row);
   rows where that would cancel most of the mass are recomputed in full;
3. a row's codes are searched only where ``o`` moved more than its slack (the
   margin at the last search minus the distance moved since), since a code cannot
   flip before that; rows with new q get attention in full and a search;
4. rows in X or with a flipped code go through W_o and the MLP (``block.finish``);
   they are X for the next layer.

Rows before the first change are never touched (attention is causal). Buffers are
moved, never rebuilt, when rows are inserted or deleted. The session's outputs
equal a dense forward of the same model on the same ids and position ids
(``tests/engine``), up to float rounding and exact code ties.

Reference: Sharir & Anandkumar, *Incrementally-Computable Neural Networks*,
arXiv 2307.14988.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import contextmanager

import torch

from ..model.vq import nearest_codes
from .attention import attend_rows, update_rows
from .edits import TokenEdit
from .ops import CostModel, OpCounter
from .plan import EditPlan
from .positions import DEFAULT_MAX_DRIFT, PositionPolicy, make_policy
from .results import Outputs, UpdateStats, head_outputs, timed_apply
from .state import SessionState


class IncrementalSession:
    """A document's cached state and its exact incremental update.

    ``position_policy``: ``"stable"`` (surviving tokens keep their position ids) or
    ``"exact"`` (ids are always 0..n-1), or a ``PositionPolicy``. ``cancel_ratio``:
    recompute a row's attention in full when an update would leave less than this
    fraction of its softmax mass (numerical safety). ``margin_guard``: search a
    code once its slack is below this (float rounding of the margins).
    ``update_cost_ratio``: a layer recomputes every row after the first change in
    full, instead of updating accumulators, once (changed keys) x this ratio reaches
    the mean key count of those rows (updating a row by one key costs about this
    many keys of the fused attention kernel).
    """

    def __init__(
        self,
        model,
        token_ids: Sequence[int] = (),
        position_policy: str | PositionPolicy = "stable",
        *,
        max_drift: int = DEFAULT_MAX_DRIFT,
        cancel_ratio: float = 0.25,
        margin_guard: float = 1e-6,
        update_cost_ratio: float = 3.0,
        profile: bool = False,
    ):
        if not model.cfg.vq.enabled:
            raise ValueError("the incremental engine needs a model with VQ enabled")
        self.model = model.eval()
        self.cfg = model.cfg
        self.policy = make_policy(position_policy, self.cfg, max_drift)
        self.cost = CostModel.of(self.cfg)
        self.cancel_ratio = cancel_ratio
        self.margin_guard = margin_guard
        self.update_cost_ratio = update_cost_ratio
        self.profile = profile  # synchronize and time each stage (UpdateStats.stage_ms / layer_ms)
        self._stats: UpdateStats | None = None
        weight = model.embed.weight
        self.state = SessionState(self.cfg, model.hidden_dim, weight.device, weight.dtype)
        self.pooled_sum = torch.zeros(model.hidden_dim, dtype=torch.float64, device=weight.device)
        self.last_stats: UpdateStats | None = None
        if len(token_ids):
            self.apply([TokenEdit(0, 0, tuple(token_ids))])

    # --- reading the state --------------------------------------------------------------

    @property
    def n(self) -> int:
        return self.state.n

    @property
    def token_ids(self) -> list[int]:
        return self.state.ids[: self.n].tolist()

    @property
    def position_ids(self) -> torch.Tensor:
        """(n,) long; aliases the cache (copy it to keep it)."""
        return self.state.pos[: self.n]

    def codes(self, layer: int) -> torch.Tensor:
        """(n, H) codes of one layer; aliases the cache."""
        return self.state.codes[layer, : self.n]

    def state_bytes_per_token(self) -> int:
        return self.state.bytes_per_token()

    @torch.no_grad()
    def outputs(self, spans: Sequence[tuple[int, int]] | None = None, hidden: bool = False) -> Outputs:
        """Document-head probabilities, span-head probabilities for ``spans`` (token ranges),
        and the final hidden states when ``hidden`` (a view of the cache, not a copy)."""
        n, st = self.n, self.state
        pooled = None
        head = self.model.document_head
        if head is not None and n:
            pooled = st.hidden[n - 1] if head.pooling == "last" else (self.pooled_sum / n).to(st.dtype)
        return head_outputs(self.model, n, pooled, st.hidden[:n], spans, hidden)

    # --- the update -----------------------------------------------------------------------

    @torch.no_grad()
    def apply(self, edits: Sequence[TokenEdit]) -> UpdateStats:
        """Apply ``edits`` (offsets into the current tokens) and update every cached row that changes."""
        self.last_stats = timed_apply(self.n, edits, self.state.device, self._apply)
        return self.last_stats

    @contextmanager
    def _stage(self, name: str):
        """Charge the wall time of a block to ``stage_ms[name]`` (when profiling)."""
        if not self.profile:
            yield
            return
        self._sync()
        start = time.perf_counter()
        yield
        self._sync()
        ms = self._stats.stage_ms
        ms[name] = ms.get(name, 0.0) + (time.perf_counter() - start) * 1e3

    def _sync(self) -> None:
        if self.state.device.type == "cuda":
            torch.cuda.synchronize(self.state.device)

    def _apply(self, plan: EditPlan, stats: UpdateStats) -> None:
        self._stats = stats
        gone_k, gone_v, gone_coord, changed, rotated, is_new, first = self._prepare(plan, stats)
        for layer in range(self.cfg.depth):
            start = time.perf_counter()
            changed = self._layer(layer, changed, rotated, gone_k[layer], gone_v[layer], gone_coord,
                                  is_new, first, stats)
            if self.profile:
                self._sync()
            stats.layer_ms.append((time.perf_counter() - start) * 1e3)
        with self._stage("final"):
            self._final(changed, stats)

    def _prepare(self, plan: EditPlan, stats: UpdateStats):
        """Move rows, write new ones, find rows whose position id moved; embed changed rows."""
        st, cfg, dev = self.state, self.cfg, self.state.device
        long = dict(dtype=torch.long, device=dev)
        # 1. what leaves: old k/v of deleted rows (all layers) and their pooled states
        del_rows, del_coord = plan.deleted()
        deleted = torch.tensor(del_rows, **long)
        gone_k, gone_v = st.k[:, deleted], st.v[:, deleted]  # (L, nd, Hkv, Dh)
        gone_coord = torch.tensor(del_coord, **long)
        if del_rows:
            self.pooled_sum -= st.hidden[deleted].double().sum(0)
        # 2. new positions, rows moved to their new indices, new rows written
        new_pos, stats.reindexed = self.policy.update(st.pos[: plan.old_len], plan)
        with self._stage("move"):
            st.reserve(plan.new_len)
            st.move(plan.moved())
        n = st.n = plan.new_len
        ins_rows, ins_ids = plan.inserted()
        inserted = torch.tensor(ins_rows, **long)
        st.ids[inserted] = torch.tensor(ins_ids, **long)
        st.hidden[inserted] = 0
        is_new = torch.zeros(n, dtype=torch.bool, device=dev)
        is_new[inserted] = True
        moved_pos = ((st.pos[:n] != new_pos) & ~is_new).nonzero().squeeze(1)  # survivors whose id changed
        st.pos[:n] = new_pos
        first = plan.first_change
        if len(moved_pos):
            first = min(first, int(moved_pos[0]))
        # 3. layer 0 input; learned positions put moved ids into x, RoPE into q/k only
        if cfg.positions == "learned":
            changed, rotated = _union(inserted, moved_pos), moved_pos[:0]
        else:
            changed, rotated = inserted, moved_pos
        if len(changed):
            st.x[0, changed] = self.model.embed_rows(st.ids[changed], st.pos[changed])
        stats.ops["io"] += len(changed) * self.cost.io_proj // 2
        return gone_k, gone_v, gone_coord, changed, rotated, is_new, first

    def _final(self, changed: torch.Tensor, stats: UpdateStats) -> None:
        """Final states and the pooled document feature of rows whose last output changed."""
        st, cfg = self.state, self.cfg
        if len(changed):
            h = self.model.final_rows(st.x[cfg.depth, changed])
            self.pooled_sum += (h.double() - st.hidden[changed].double()).sum(0)
            st.hidden[changed] = h
            stats.ops["io"] += len(changed) * self.cost.io_proj // 2

    def _layer(
        self, layer: int, changed: torch.Tensor, rotated: torch.Tensor, gone_k: torch.Tensor,
        gone_v: torch.Tensor, gone_coord: torch.Tensor, is_new: torch.Tensor, first: int,
        stats: UpdateStats,
    ) -> torch.Tensor:
        """One layer of the update. ``changed``: sorted rows whose input x changed. Returns the
        rows whose output changed (the next layer's ``changed``)."""
        st, block, cost, n = self.state, self.model.blocks[layer], self.cost, self.state.n
        ops: OpCounter = stats.ops
        for per_layer in (stats.searched, stats.code_flips):
            per_layer.append(0)
        fresh = _union(changed, rotated)  # rows with new q, k, v
        # 1. projections of rows whose input (or RoPE position) changed
        with self._stage("qkv"):
            survivors = fresh[~is_new[fresh]]
            old_k, old_v = st.k[layer, survivors], st.v[layer, survivors]
            if len(fresh):
                q, k, v = block.qkv(st.x[layer, fresh], self.model.positional(st.pos[fresh]))
                st.q[layer, fresh], st.k[layer, fresh], st.v[layer, fresh] = q, k, v
                ops.rows(cost, qkv=len(fresh))
            else:
                k = v = st.k[layer, :0]
        # 2. accumulator updates of the other rows after the first change
        flipped, full = [], fresh
        keys_out = len(gone_coord) + len(survivors)
        changed_keys = keys_out + len(fresh)
        if first < n and changed_keys * self.update_cost_ratio >= (first + n) / 2:
            # so many keys changed that updating each row costs more than attending afresh
            full = torch.arange(first, n, device=fresh.device)
        elif first < n and changed_keys:
            keys = torch.cat([gone_k, old_k, k])
            values = torch.cat([gone_v, old_v, v])
            key_coord = torch.cat([gone_coord, 2 * survivors, 2 * fresh])
            with self._stage("accumulate"):
                rows, redo, look = self._update_tail(layer, fresh, first, keys, values, key_coord, keys_out, ops)
            if bool(redo.any()):
                full = _union(fresh, rows[redo])
            with self._stage("search"):
                self._search(layer, rows[look], flipped, stats)
        # 3. attention in full for fresh rows (and rows an update could not handle)
        if len(full):
            with self._stage("attention"):
                o, lse = attend_rows(st.q[layer, full], full, st.k[layer, :n], st.v[layer, :n])
                st.o[layer, full], st.lse[layer, full] = o, lse
                ops["attention"] += cost.attention(int(full.sum()) + len(full))
            with self._stage("search"):
                self._search(layer, full, flipped, stats, fresh_rows=is_new[full])
        # 4. W_o + MLP for rows whose input or codes changed
        with self._stage("finish"):
            out = _union(changed, *flipped)
            if len(out):
                c = block.vq.lookup(st.codes[layer, out].long())
                st.x[layer + 1, out] = block.finish(st.x[layer, out], c)
                ops.rows(cost, finish=len(out))
        stats.rows_changed.append(len(_union(out, rotated)) if len(rotated) else len(out))
        stats.recomputed.append(len(full))
        return out

    def _update_tail(
        self, layer: int, fresh: torch.Tensor, first: int, keys: torch.Tensor, values: torch.Tensor,
        key_coord: torch.Tensor, keys_out: int, ops: OpCounter,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Update the accumulators of rows >= ``first`` not in ``fresh`` for the changed keys
        (the first ``keys_out`` leave, the rest arrive). Returns the rows updated, and masks of
        those to recompute in full (cancellation) and to search (slack used up)."""
        st, n = self.state, self.state.n
        added = torch.arange(len(keys), device=keys.device) >= keys_out
        span = n - first
        in_full = torch.zeros(span, dtype=torch.bool, device=keys.device)
        in_full[fresh - first] = True
        if 2 * len(fresh) <= span:  # mostly reused rows: work in place on the contiguous tail
            rows, sel = torch.arange(first, n, device=keys.device), slice(first, n)
        else:  # mostly fresh rows: gather the others
            rows = (~in_full).nonzero().squeeze(1) + first
            sel, in_full = rows, in_full[rows - first]
        o_old = st.o[layer, sel]
        o_new, lse_new, cancelled = update_rows(
            st.q[layer, sel], o_old, st.lse[layer, sel], 2 * rows, keys, values, key_coord, added,
            self.cancel_ratio,
        )
        ops["accumulate"] += self.cost.accumulate(len(rows), len(keys))
        slack = st.slack[layer, sel] - (o_new - o_old).norm(dim=-1)
        st.o[layer, sel], st.lse[layer, sel], st.slack[layer, sel] = o_new, lse_new, slack
        redo = cancelled.any(-1) & ~in_full
        look = (slack <= self.margin_guard).any(-1) & ~in_full & ~redo
        return rows, redo, look

    def _search(
        self, layer: int, rows: torch.Tensor, flipped: list[torch.Tensor], stats: UpdateStats,
        fresh_rows: torch.Tensor | None = None,
    ) -> None:
        """Nearest-code search for ``rows``; resets their slack to the new margins and appends
        the surviving rows whose codes changed to ``flipped`` (``fresh_rows`` marks new tokens)."""
        if not len(rows):
            return
        st = self.state
        codes, margins = nearest_codes(st.o[layer, rows], self.model.blocks[layer].vq.codebook)
        diff = codes != st.codes[layer, rows]
        if fresh_rows is not None:
            diff &= ~fresh_rows.unsqueeze(1)
        st.codes[layer, rows], st.slack[layer, rows] = codes.to(st.codes.dtype), margins
        flipped.append(rows[diff.any(-1)])
        stats.ops["vq"] += len(rows) * self.cost.vq
        stats.searched[layer] += len(rows)
        stats.code_flips[layer] += int(diff.sum())


def _union(first: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
    """Sorted union of index tensors (``first`` itself when the others are empty)."""
    rest = [t for t in others if len(t)]
    if not rest:
        return first
    return torch.unique(torch.cat([first, *rest]))


__all__ = ["IncrementalSession"]
