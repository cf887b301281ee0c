"""Exact incremental inference over a VQ transformer (DESIGN.md, "The incremental algorithm").

``IncrementalSession`` keeps a document's per-layer state (``state.py``) and,
for each call of ``apply(edits)``, pushes only what changed through the model.
Per layer l, with X = rows whose input x changed:

1. rows in X (and, RoPE with moved position ids, rows whose id changed) get new
   q, k, v: gather -> norm1 + projections -> scatter;
2. every other row after the first change has its accumulators updated for the
   keys that left and arrived (``attention.update_rows_``, O(changed keys) per row,
   in place on the slot range that holds the tail);
   rows where that would cancel most of the mass are recomputed in full;
3. rows with new q (and rows an update could not handle) get attention in full;
4. a row's codes are searched only where ``o`` moved more than its slack (the
   margin at the last search minus the distance moved since), since a code cannot
   flip before that, and for every row attended in full;
5. rows in X or with a flipped code go through W_o and the MLP (``block.finish``);
   they are X for the next layer.

Rows before the first change are never touched (attention is causal). Rows are
never moved when tokens are inserted or deleted: each token keeps its slot in the
buffers (``state.py``). The session's outputs equal a dense forward of the same
model on the same ids and position ids (``tests/engine``), up to float rounding
and exact code ties.

Where the time goes (SmolLM2, 1024 tokens, one CPU thread): with a row or two
changed per layer, streaming the layer's weights through the few-row matmuls
(~14 MB fp32 a layer, ``model/packed.py``) and reading its keys/values for the
new rows' attention cost about as much as all the bookkeeping; the accumulator
update of the tail (fused in C on the CPU, ``native``) grows with the rows after
the first change.

Reference: Sharir & Anandkumar, *Incrementally-Computable Neural Networks*,
arXiv 2307.14988.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..model.acm import learners_run
from ..model.vq import nearest_codes
from .attention import attend_rows, update_rows_
from .edits import TokenEdit
from .ops import CostModel, OpCounter
from .plan import EditPlan
from .positions import DEFAULT_MAX_DRIFT, PositionPolicy, make_policy
from .results import Outputs, UpdateStats, head_outputs, timed_apply
from .state import SessionState


@dataclass
class _Call:
    """What every layer of one ``apply`` call needs to know (slots are long tensors)."""

    gone_k: torch.Tensor  # (L, Hkv, deleted, Dh) keys of deleted tokens
    gone_v: torch.Tensor
    gone_coord: torch.Tensor  # their doubled coordinates (``plan.py``)
    is_new: torch.Tensor  # (capacity,) bool: the slot holds an inserted token
    first: int  # first document index whose row may change
    lowest: int  # lowest slot holding a token at index >= first


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
    many keys of the fused attention kernel: measured ~1 with the C update kernel;
    at 3, heavy edits recomputed too early: p95 152 ms vs 120 at 1.0, 1024 tokens).
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
        update_cost_ratio: float = 1.0,
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
        self._work = torch.zeros(0, dtype=torch.int32)  # this call's per-slot layer count (``UpdateStats.row_work``)
        self._learners: torch.Tensor | None = None  # this call's per-slot learners run (ACM MLPs)
        weight = model.embed.weight
        self.state = SessionState(self.cfg, model.hidden_dim, weight.device, weight.dtype)
        self.pooled_sum = torch.zeros(model.hidden_dim, dtype=torch.float64, device=weight.device)
        self.last_stats: UpdateStats | None = None
        if len(token_ids):
            self.apply([TokenEdit(0, 0, tuple(token_ids))])

    # --- reading the state (document order; copies) -------------------------------------

    def fork(self) -> IncrementalSession:
        """An independent copy that shares the model: apply edits to it and drop it (the compute
        analyses try one edit at a time this way, ``analyze/reuse.py``)."""
        twin = copy.copy(self)
        twin.state = copy.deepcopy(self.state, {id(self.state.cfg): self.state.cfg})
        twin.pooled_sum = self.pooled_sum.clone()
        twin.last_stats = twin._stats = None
        return twin

    @property
    def n(self) -> int:
        return self.state.n

    @property
    def token_ids(self) -> list[int]:
        return self.state.rows("ids").tolist()

    @property
    def position_ids(self) -> torch.Tensor:
        """(n,) long."""
        return self.state.rows("pos")

    def codes(self, layer: int) -> torch.Tensor:
        """(n, H) codes of one layer."""
        return self.state.rows("codes", layer)

    def learners(self, layer: int) -> torch.Tensor:
        """(n,) learners each token's ACM MLP runs in one layer (ACM models only)."""
        if self.cfg.acm is None:
            raise ValueError("the model has no ACM MLPs")
        return self.state.rows("learners", layer).long()

    def attention_outputs(self, layer: int) -> torch.Tensor:
        """(n, H, Dh) pre-VQ attention outputs of one layer (the accumulators)."""
        return self.state.rows("o", layer)

    @property
    def drift(self) -> int:
        """How far the position ids are from exact: max |id - index| (0 under the exact policy)."""
        if not self.n:
            return 0
        return int((self.position_ids - torch.arange(self.n, device=self.state.device)).abs().max())

    def state_bytes_per_token(self) -> int:
        return self.state.bytes_per_token()

    @torch.no_grad()
    def outputs(self, spans: Sequence[tuple[int, int]] | None = None, hidden: bool = False) -> Outputs:
        """Document-head probabilities, span-head probabilities for ``spans`` (token ranges),
        and the final hidden states when ``hidden``."""
        n, st = self.n, self.state
        pooled = None
        head = self.model.document_head
        if head is not None and n:
            last = st.hidden[st.order[n - 1]]
            pooled = last if head.pooling == "last" else (self.pooled_sum / n).to(st.dtype)
        needs_rows = hidden or (spans and self.model.span_head is not None)
        rows = st.rows("hidden") if needs_rows else None
        return head_outputs(self.model, n, pooled, rows, spans, hidden)

    # --- the update -----------------------------------------------------------------------

    @torch.inference_mode()
    def apply(self, edits: Sequence[TokenEdit]) -> UpdateStats:
        """Apply ``edits`` (offsets into the current tokens) and update every cached row that changes."""
        self.last_stats = timed_apply(self.n, edits, self.state.device, self._apply)
        return self.last_stats

    @torch.inference_mode()
    def reindex(self) -> UpdateStats:
        """Give every token its exact position id (0..n-1) and update every row that changes.

        What the ``stable`` policy does by itself past its drift bound, on demand: a server
        calls it when the writer pauses, so the results shown at rest are those of exact ids.
        It costs about a re-run of the rows after the first moved id (nothing when none moved).
        """
        self.last_stats = timed_apply(
            self.n, [], self.state.device, lambda plan, stats: self._apply(plan, stats, reindex=True), always=True
        )
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

    def _apply(self, plan: EditPlan, stats: UpdateStats, reindex: bool = False) -> None:
        self._stats = stats
        call, changed, rotated = self._prepare(plan, stats, reindex)
        work = torch.zeros(self.state.capacity, dtype=torch.int32, device=self.state.device)
        self._work, self._learners = work, None
        for layer in range(self.cfg.depth):
            start = time.perf_counter()
            changed = self._layer(layer, changed, rotated, call, stats)
            if self.profile:
                self._sync()
            stats.layer_ms.append((time.perf_counter() - start) * 1e3)
        with self._stage("final"):
            self._final(changed, stats)
        order = self.state.order
        stats.row_work = work[order]
        if self._learners is not None:
            stats.row_learners = self._learners[order]

    def _prepare(self, plan: EditPlan, stats: UpdateStats, reindex: bool) -> tuple[_Call, torch.Tensor, torch.Tensor]:
        """Give tokens their slots, find rows whose position id moved, embed changed rows.
        Returns the call's context, the slots whose layer-0 input changed, and (RoPE) the
        slots whose position id alone changed."""
        st, cfg, dev = self.state, self.cfg, self.state.device
        if reindex:
            new_pos, stats.reindexed = torch.arange(plan.new_len, device=dev), True
        else:
            new_pos, stats.reindexed = self.policy.update(st.rows("pos"), plan)
        with self._stage("slots"):
            slots = st.rearrange(plan)
        # what leaves: deleted tokens' keys/values (all layers) and pooled states, read
        # before anything is written (inserted tokens may reuse their slots)
        deleted, inserted = slots.deleted, slots.inserted
        gone_k, gone_v = st.k[:, :, deleted], st.v[:, :, deleted]  # (L, Hkv, deleted, Dh)
        gone_coord = torch.tensor(plan.deleted()[1], dtype=torch.long, device=dev)
        if len(deleted):
            self.pooled_sum -= st.hidden[deleted].double().sum(0)
        st.ids[inserted] = torch.tensor(plan.inserted()[1], dtype=torch.long, device=dev)
        st.hidden[inserted] = 0
        is_new = torch.zeros(st.capacity, dtype=torch.bool, device=dev)
        is_new[inserted] = True
        order = st.order
        moved = (st.pos[order] != new_pos) & ~is_new[order]  # survivors whose position id changed
        st.pos[order] = new_pos
        first, lowest = plan.first_change, slots.lowest_tail_slot
        moved_at = moved.nonzero().squeeze(1)
        if len(moved_at) and int(moved_at[0]) < first:
            first = int(moved_at[0])
            lowest = int(order[first:].min())
        moved_pos = order[moved_at]
        # layer 0 input; learned positions put moved ids into x, RoPE into q/k only
        if cfg.positions == "learned":
            changed, rotated = _union(inserted, moved_pos), moved_pos[:0]
        else:
            changed, rotated = inserted, moved_pos
        if len(changed):
            st.x[0, changed] = self.model.embed_rows(st.ids[changed], st.pos[changed])
        stats.ops["io"] += len(changed) * self.cost.io_proj // 2
        return _Call(gone_k, gone_v, gone_coord, is_new, first, lowest), changed, rotated

    def _final(self, changed: torch.Tensor, stats: UpdateStats) -> None:
        """Final states and the pooled document feature of rows whose last output changed."""
        st, cfg = self.state, self.cfg
        if len(changed):
            h = self.model.final_rows(st.x[cfg.depth, changed])
            self.pooled_sum += (h.double() - st.hidden[changed].double()).sum(0)
            st.hidden[changed] = h
            stats.ops["io"] += len(changed) * self.cost.io_proj // 2

    def _layer(
        self, layer: int, changed: torch.Tensor, rotated: torch.Tensor, call: _Call, stats: UpdateStats
    ) -> torch.Tensor:
        """One layer of the update. ``changed``: slots whose input x changed. Returns the
        slots whose output changed (the next layer's ``changed``)."""
        st, block, cost = self.state, self.model.blocks[layer], self.cost
        n, first = st.n, call.first
        ops: OpCounter = stats.ops
        for per_layer in (stats.searched, stats.code_flips):
            per_layer.append(0)
        fresh = _union(changed, rotated)  # slots with new q, k, v
        # 1. projections of rows whose input (or RoPE position) changed
        with self._stage("qkv"):
            survivors = fresh[~call.is_new[fresh]]
            old_k, old_v = st.k[layer][:, survivors], st.v[layer][:, survivors]  # (Hkv, r, Dh)
            if len(fresh):
                rows_qkv = block.qkv(st.x[layer, fresh], self.model.positional(st.pos[fresh]))
                q, k, v = (t.transpose(0, 1) for t in rows_qkv)  # head-major, as stored
                st.q[layer][:, fresh], st.k[layer][:, fresh], st.v[layer][:, fresh] = q, k, v
                ops.rows(cost, qkv=len(fresh))
            else:
                k = v = st.k[layer][:, :0]
        # 2. accumulator updates of the other rows after the first change
        full, look = fresh, fresh[:0]
        keys_out = len(call.gone_coord) + len(survivors)
        changed_keys = keys_out + len(fresh)
        if first < n and changed_keys * self.update_cost_ratio >= (first + n) / 2:
            # so many keys changed that updating each row costs more than attending afresh
            full = st.order[first:]
        elif first < n and changed_keys:
            keys = torch.cat([call.gone_k[layer], old_k, k], dim=1)
            values = torch.cat([call.gone_v[layer], old_v, v], dim=1)
            key_coord = torch.cat([call.gone_coord, 2 * st.rank[survivors], 2 * st.rank[fresh]])
            with self._stage("accumulate"):
                rows, redo, look = self._update_tail(layer, fresh, call, keys, values, key_coord, keys_out, ops)
            if bool(redo.any()):
                full = _union(fresh, rows[redo])
            look = rows[look]
        # 3. attention in full for fresh rows (and rows an update could not handle)
        if len(full):
            with self._stage("attention"):
                used = st.used
                rank = st.rank[full]
                o, lse = attend_rows(
                    st.q[layer][:, full], rank, st.k[layer][:, :used], st.v[layer][:, :used], st.rank[:used]
                )
                st.o[layer][:, full], st.lse[layer][:, full] = o, lse
                ops["attention"] += cost.attention(int(rank.sum()) + len(full))
        # 4. one code search: rows whose slack ran out, rows attended in full
        with self._stage("search"):
            flipped = self._search(layer, torch.cat([look, full]), call.is_new, stats)
        # 5. W_o + MLP for rows whose input or codes changed
        with self._stage("finish"):
            out = _union(changed, flipped)
            learners = None
            if len(out):
                c = block.vq.lookup(st.codes[layer, out].long())
                st.x[layer + 1, out] = block.finish(st.x[layer, out], c)
                learners = learners_run(block.mlp)  # an ACM MLP ran only each row's gated learners
                ops.rows(cost, finish=len(out), learners=learners)
                if learners is not None:
                    st.learners[layer, out] = block.mlp.last_learners.to(torch.int8)
                self._count_learners(block.mlp, out)
            if self.cfg.acm is not None:
                stats.learners.append(learners or 0)
        touched = _union(out, rotated) if len(rotated) else out
        self._work[touched] += 1
        stats.rows_changed.append(len(touched))
        stats.recomputed.append(len(full))
        return out

    def _count_learners(self, mlp: torch.nn.Module, rows: torch.Tensor) -> None:
        """Add the learners an ACM MLP ran for ``rows`` (its ``last_learners``, one count per row of
        its last forward) to this call's per-row total; MLPs without the attribute count nothing."""
        counted = getattr(mlp, "last_learners", None)
        if not isinstance(counted, torch.Tensor) or counted.shape != rows.shape:
            return
        if self._learners is None:
            self._learners = torch.zeros(self.state.capacity, dtype=torch.float32, device=self.state.device)
        self._learners[rows] += counted.to(self._learners)

    def _update_tail(
        self, layer: int, fresh: torch.Tensor, call: _Call, keys: torch.Tensor, values: torch.Tensor,
        key_coord: torch.Tensor, keys_out: int, ops: OpCounter,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Update the accumulators of rows at index >= ``call.first`` that are not ``fresh``
        for the changed keys (the first ``keys_out`` leave, the rest arrive). Returns the
        slots updated, and masks of those to recompute in full (cancellation) and to search
        (slack used up)."""
        st, dev, first = self.state, keys.device, call.first
        added = torch.arange(keys.shape[1], device=dev) >= keys_out
        is_fresh = torch.zeros(st.used, dtype=torch.bool, device=dev)
        is_fresh[fresh] = True
        if 2 * len(fresh) <= st.n - first:
            # mostly reused rows: update in place the slot range that holds the tail (rows in
            # it from before the first change see no changed key: they stay exactly as they are)
            sel = slice(call.lowest, st.used)
            rows = torch.arange(call.lowest, st.used, device=dev)
            moved, cancelled = update_rows_(
                st.q[layer][:, sel], st.o[layer][:, sel], st.lse[layer][:, sel], 2 * st.rank[sel],
                keys, values, key_coord, added, self.cancel_ratio,
            )
            slack = st.slack[layer][:, sel].sub_(moved)
            skip = is_fresh[sel] | (st.rank[sel] < first)
        else:  # mostly fresh rows: gather the others, update, scatter back
            rows = st.order[first:]
            rows = rows[~is_fresh[rows]]
            o, lse = st.o[layer][:, rows], st.lse[layer][:, rows]
            moved, cancelled = update_rows_(
                st.q[layer][:, rows], o, lse, 2 * st.rank[rows], keys, values, key_coord, added, self.cancel_ratio
            )
            slack = st.slack[layer][:, rows] - moved
            st.o[layer][:, rows], st.lse[layer][:, rows], st.slack[layer][:, rows] = o, lse, slack
            skip = torch.zeros(len(rows), dtype=torch.bool, device=dev)
        ops["accumulate"] += self.cost.accumulate(len(rows), keys.shape[1])
        redo = cancelled.any(0) & ~skip
        look = (slack <= self.margin_guard).any(0) & ~skip & ~redo
        return rows, redo, look

    def _search(self, layer: int, rows: torch.Tensor, is_new: torch.Tensor, stats: UpdateStats) -> torch.Tensor:
        """Nearest-code search for ``rows`` (slots); resets their slack to the new margins.
        Returns the rows, other than new tokens, whose codes changed."""
        if not len(rows):
            return rows
        st = self.state
        codes, margins = nearest_codes(st.o[layer][:, rows].transpose(0, 1), self.model.blocks[layer].vq.codebook)
        diff = (codes != st.codes[layer, rows]) & ~is_new[rows].unsqueeze(1)  # (rows, H)
        st.codes[layer, rows], st.slack[layer][:, rows] = codes.to(st.codes.dtype), margins.t()
        flipped = rows[diff.any(-1)]
        stats.ops["vq"] += len(rows) * self.cost.vq
        stats.searched[layer] += len(rows)
        stats.code_flips[layer] += int(diff.sum())
        return flipped


def _union(first: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
    """Sorted union of index tensors (``first`` itself when the others are empty)."""
    rest = [t for t in others if len(t)]
    if not rest:
        return first
    return torch.unique(torch.cat([first, *rest]))


__all__ = ["IncrementalSession"]
