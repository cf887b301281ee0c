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

Where the time goes (SmolLM2, 1,024 tokens, atomic edits, one CPU thread, 4-bit weights;
py-spy over 40 edits on a loaded machine, shares of the samples): the changed rows' matmuls
about a fifth (four kernel calls a layer, ``model/q4.py``: q|k|v fused, W_o, gate|up fused,
down; at FMA throughput from 8 rows on), their attention over all keys another fifth, the
accumulator update of the tail 13% (one fused C pass, ``native/update_rows.c``; it grows
with the rows after the first change), the code search 5% (``native/nearest_codes.c``),
and the rest norms, RoPE, deltas, stores and bookkeeping: ~600 small tensor ops a layer,
none above ~2%. With float32 weights (``model/packed.py``) few-row matmuls are padded to a
few row counts, so that oneDNN's cache of compiled kernels keeps them.

Reading order: ``policy.py`` decides what is recomputed, ``state.py`` holds the rows and
their per-layer verbs (``LayerState``: project, attend, update, search, finish), this
file sequences them; operation counts and stage times are recorded after the layer
loop from each layer's ``LayerReport``, never inside the per-layer math.

``static=True`` (the default on CUDA) runs the layers through ``static_loop.py`` instead:
the same steps on row sets of a fixed size per edit, with no host sync inside the loop and
one read of the counts after it (redone with a larger bucket when a set overflowed), and
on CUDA one captured graph per shape (``graphs.py``).

Reference: Sharir & Anandkumar, *Incrementally-Computable Neural Networks*,
arXiv 2307.14988.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import torch

from . import static_loop
from .attention import update_rows_
from .buckets import padded
from .edits import TokenEdit
from .ops import CostModel
from .plan import EditPlan
from .policy import RecomputePolicy
from .positions import DEFAULT_MAX_DRIFT, PositionPolicy, make_policy
from .results import Outputs, UpdateStats, head_outputs, timed_apply, timed_call
from .state import LayerState, SessionState
from .static_rows import RowBuckets


@dataclass
class _Call:
    """What every layer of one ``apply`` call needs to know (slots are long tensors)."""

    gone_k: torch.Tensor  # (L, Hkv, deleted, Dh) keys of deleted tokens
    gone_v: torch.Tensor
    gone_coord: torch.Tensor  # their doubled coordinates (``plan.py``)
    is_new: torch.Tensor  # (capacity,) bool: the slot holds an inserted token
    first: int  # first document index whose row may change
    lowest: int  # lowest slot holding a token at index >= first


@dataclass
class LayerReport:
    """What one layer of an update did (slot tensors), for the stats recorded after the loop."""

    fresh: torch.Tensor  # rows given new q, k, v
    full: torch.Tensor  # rows attended in full
    searched: torch.Tensor  # rows whose codes were searched
    flips: torch.Tensor  # (searched, H) bool: codes of surviving rows that changed
    out: torch.Tensor  # rows whose output changed (the next layer's input rows)
    rotated: torch.Tensor  # rows whose q/k alone moved (RoPE, new position id)
    updated: int = 0  # rows whose accumulators were updated
    update_keys: int = 0  # keys they were updated for
    learners: torch.Tensor | None = None  # ACM: learners the ``out`` rows ran in all (0-d), else None


class IncrementalSession:
    """A document's cached state and its exact incremental update.

    ``position_policy``: ``"stable"`` (surviving tokens keep their position ids) or
    ``"exact"`` (ids are always 0..n-1), or a ``PositionPolicy``. ``recompute``: what is
    recomputed in full and what updated in place (``RecomputePolicy``; its defaults).
    ``buckets``: pad every row set of the dynamic loop to a fixed size (``buckets.py``).
    ``static``: run the layers without host syncs, on row sets of a fixed size per edit
    (``static_loop.py``; default on CUDA, for models without ACM MLPs), sized by
    ``row_buckets``; ``graphs``: replay them as captured CUDA graphs (``graphs.py``; default
    with ``static`` on CUDA). ``profile``: synchronize and time each stage
    (``UpdateStats.stage_ms``; the dynamic loop only).
    """

    def __init__(
        self,
        model,
        token_ids: Sequence[int] = (),
        position_policy: str | PositionPolicy = "stable",
        *,
        max_drift: int = DEFAULT_MAX_DRIFT,
        recompute: RecomputePolicy | None = None,
        buckets: bool | None = None,
        static: bool | None = None,
        row_buckets: RowBuckets | None = None,
        graphs: bool | None = None,
        profile: bool = False,
    ):
        if not model.cfg.vq.enabled:
            raise ValueError("the incremental engine needs a model with VQ enabled")
        self.model = model.eval()
        self.cfg = model.cfg
        self.policy = make_policy(position_policy, self.cfg, max_drift)
        self.recompute = recompute or RecomputePolicy()
        self.cost = CostModel.of(self.cfg)
        self._work = torch.zeros(0, dtype=torch.int32)  # this call's per-slot layer count (``UpdateStats.row_work``)
        self._learners: torch.Tensor | None = None  # this call's per-slot learners run (ACM MLPs)
        weight = model.embed.weight
        cuda = weight.device.type == "cuda"
        self.buckets = cuda if buckets is None else buckets
        if static and self.cfg.acm is not None:
            raise ValueError("the static layer loop does not run ACM MLPs (their learners pick rows on the host)")
        self.static = (cuda and self.cfg.acm is None) if static is None else static
        self.row_buckets = row_buckets or RowBuckets()
        if graphs and not (self.static and cuda):
            raise ValueError("captured CUDA graphs need static=True on a CUDA device")
        self.graphs = self.static and cuda if graphs is None else graphs
        self._loop = self._layer_loop()
        self._peak = self._search_peak = 0  # the static loop: the last edit's largest row sets
        self.profile = profile
        self._stage_ms: dict[str, float] | None = None
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
        twin._loop = twin._layer_loop()  # captured graphs hold the original's buffers
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
    def apply_in_steps(self, edits: Sequence[TokenEdit]) -> Iterator[int]:
        """``apply``, one layer per step: yields -1 once the edit's rows have their slots, then
        each layer's index once it is done, so that a caller can put the rest off (a background
        build gives way to a keystroke between two layers; the static loop runs its layers as
        one step). ``last_stats`` is set when the iterator is exhausted. Until then the session
        must not be read or changed; one dropped midway is unusable (a build drops it whole)."""
        with timed_call(self.n, edits, self.state.device) as (plan, stats):  # (time between steps counts)
            if not plan.empty:
                yield from self._apply_steps(plan, stats)
        self.last_stats = stats

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
        if self._stage_ms is None:
            yield
            return
        self._sync()
        start = time.perf_counter()
        yield
        self._sync()
        self._stage_ms[name] = self._stage_ms.get(name, 0.0) + (time.perf_counter() - start) * 1e3

    def _sync(self) -> None:
        if self.state.device.type == "cuda":
            torch.cuda.synchronize(self.state.device)

    def _layer_loop(self):
        """The static loop's runner: captured graphs on CUDA, else the function itself."""
        if not self.graphs:
            return static_loop.run_layers
        from .graphs import GraphedLayers

        return GraphedLayers()

    def _apply(self, plan: EditPlan, stats: UpdateStats, reindex: bool = False) -> None:
        for _ in self._apply_steps(plan, stats, reindex):
            pass

    def _apply_steps(self, plan: EditPlan, stats: UpdateStats, reindex: bool = False) -> Iterator[int]:
        self._stage_ms = stats.stage_ms if self.profile and not self.static else None
        call, changed, rotated = self._prepare(plan, stats, reindex)
        yield -1  # rows placed, buffers grown (the longest step of an append): a step of its own
        if self.static:  # (its layers run as one step: the loop reads its counts once, after them)
            self._apply_static(call, changed, rotated, stats)
            return
        reports = []
        self._work = torch.zeros(self.state.capacity, dtype=torch.int32, device=self.state.device)
        self._learners = None
        for layer in range(self.cfg.depth):
            start = time.perf_counter()
            reports.append(self._layer(layer, changed, rotated, call))
            changed = reports[-1].out
            if self.profile:
                self._sync()
            stats.layer_ms.append((time.perf_counter() - start) * 1e3)
            yield layer
        with self._stage("final"):
            self._final(changed, stats)
        for report in reports:  # counts read once, after the layer loop
            self._record(report, stats)
        order = self.state.order
        stats.row_work = self._work[order]
        if self._learners is not None:
            stats.row_learners = self._learners[order]

    def _apply_static(self, call: _Call, changed: torch.Tensor, rotated: torch.Tensor, stats: UpdateStats) -> None:
        """The layers through ``static_loop``: one bucket per edit, one read of the counts
        after the loop, and a redo with a larger bucket after an overflow."""
        st, cost = self.state, self.cost
        tail = st.n - call.first
        if tail <= 0:  # nothing at or after the first change (a deletion at the end)
            stats.rows_changed, stats.searched, stats.code_flips, stats.recomputed = (
                [0] * self.cfg.depth for _ in range(4))
            self._work, self._learners = torch.zeros(st.capacity, dtype=torch.int32, device=st.device), None
            stats.row_work = self._work[st.order]
            return
        buckets, first_rows = self.row_buckets, len(changed) + len(rotated)
        edit = static_loop.prepare(
            st, changed, rotated, call.is_new, call.gone_k, call.gone_v, call.gone_coord, call.first,
            buckets.first(first_rows, tail, self._peak), buckets.first(first_rows, tail, self._search_peak),
        )
        result, counts = self._run_static(edit, tail, stats)
        stats.bucket = edit.bucket
        self._peak = max(row[c] for row in counts for c in static_loop.ROW_COLUMNS)
        self._search_peak = max(row[static_loop.SEARCHED] for row in counts)
        for row in counts:
            stats.ops.rows(cost, qkv=row[static_loop.FRESH], finish=row[static_loop.OUT])
            stats.ops["attention"] += cost.attention(row[static_loop.ATTENTION_KEYS])
            stats.ops["accumulate"] += cost.accumulate(row[static_loop.UPDATED], row[static_loop.UPDATE_KEYS])
            stats.ops["vq"] += row[static_loop.SEARCHED] * cost.vq
            stats.searched.append(row[static_loop.SEARCHED])
            stats.code_flips.append(row[static_loop.FLIPS])
            stats.rows_changed.append(row[static_loop.TOUCHED])
            stats.recomputed.append(row[static_loop.FULL])
        self._work, self._learners = result.work[: st.capacity], None
        self._final(result.out.nonzero().squeeze(1), stats)
        stats.row_work = self._work[st.order]

    def _run_static(
        self, edit: static_loop.StaticEdit, tail: int, stats: UpdateStats
    ) -> tuple[static_loop.LoopResult, list[list[int]]]:
        """Run the loop, read its counts (the one host read), and while a set overflowed its
        bucket put the state back and run again with larger buckets, sized by what the first
        overflowing layer counted. Returns the last run and its counts, per layer."""
        while True:
            result = self._loop(self.model, self.state, self.recompute, edit)
            counts = result.counts.tolist()
            over = next((row for row in counts if row[static_loop.OVERFLOW]), None)
            if over is None:
                return result, counts
            result.undo.restore(self.state)
            stats.redos += 1
            before = edit.bucket, edit.search_bucket
            needed = max(over[c] for c in static_loop.ROW_COLUMNS)
            if needed > edit.bucket:
                edit.bucket = self.row_buckets.grow(edit.bucket, tail, needed)
            if over[static_loop.SEARCHED] > edit.search_bucket:
                edit.search_bucket = self.row_buckets.grow(edit.search_bucket, tail, over[static_loop.SEARCHED])
            if (edit.bucket, edit.search_bucket) == before:  # every set lies in the tail: cannot happen
                raise RuntimeError(f"static loop: a row set outgrew the tail ({tail} rows)")
            edit.undo = min(edit.bucket, edit.search_bucket) < tail

    def _record(self, r: LayerReport, stats: UpdateStats) -> None:
        """Charge one layer's work to ``stats`` (operation counts, rows, flips, learners)."""
        cost, ops = self.cost, stats.ops
        learners = None if r.learners is None else int(r.learners)
        ops.rows(cost, qkv=len(r.fresh), finish=len(r.out), learners=learners)
        if len(r.full):
            ops["attention"] += cost.attention(int(self.state.rank[r.full].sum()) + len(r.full))
        if r.updated:
            ops["accumulate"] += cost.accumulate(r.updated, r.update_keys)
        ops["vq"] += len(r.searched) * cost.vq
        stats.searched.append(len(r.searched))
        stats.code_flips.append(int(r.flips.sum()))
        touched = _union(r.out, r.rotated) if len(r.rotated) else r.out
        self._work[touched] += 1
        stats.rows_changed.append(len(touched))
        stats.recomputed.append(len(r.full))
        if self.cfg.acm is not None:
            stats.learners.append(learners or 0)

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

    def _layer(self, layer: int, changed: torch.Tensor, rotated: torch.Tensor, call: _Call) -> LayerReport:
        """One layer of the update. ``changed``: slots whose input x changed; the report's
        ``out``: slots whose output changed (the next layer's ``changed``)."""
        st, block = self.state, self.model.blocks[layer]
        rows = st.layer(layer, padded if self.buckets else _same)
        n, first = st.n, call.first
        fresh = _union(changed, rotated)  # slots with new q, k, v
        # 1. projections of rows whose input (or RoPE position) changed
        with self._stage("qkv"):
            survivors = fresh[~call.is_new[fresh]]
            old_k, old_v = rows.cached_kv(survivors)  # (Hkv, r, Dh), before they are overwritten
            if len(fresh):
                k, v = rows.project(fresh, block, self.model.positional)
            else:
                k, v = old_k[:, :0], old_v[:, :0]
        # 2. accumulator updates of the other rows after the first change
        full, look, updated, keys_count = fresh, fresh[:0], 0, 0
        keys_out = len(call.gone_coord) + len(survivors)
        changed_keys = keys_out + len(fresh)
        if self.recompute.attend_all(changed_keys, first, n):
            full = st.order[first:]  # updating each row would cost more than attending afresh
        elif first < n and changed_keys:
            keys = torch.cat([call.gone_k[layer], old_k, k], dim=1)
            values = torch.cat([call.gone_v[layer], old_v, v], dim=1)
            key_coord = torch.cat([call.gone_coord, 2 * st.rank[survivors], 2 * st.rank[fresh]])
            with self._stage("accumulate"):
                updated_rows, redo, look = self._update_tail(rows, fresh, call, keys, values, key_coord, keys_out)
            updated, keys_count = len(updated_rows), keys.shape[1]
            if bool(redo.any()):
                full = _union(fresh, updated_rows[redo])
            look = updated_rows[look]
        # 3. attention in full for fresh rows (and rows an update could not handle)
        if len(full):
            with self._stage("attention"):
                rows.attend(full)
        # 4. one code search: rows whose slack ran out, rows attended in full
        with self._stage("search"):
            searched = torch.cat([look, full])
            flips = fresh.new_zeros(0, self.cfg.n_heads, dtype=torch.bool)
            if len(searched):
                flips = rows.search(searched, block.vq.codebook) & ~call.is_new[searched].unsqueeze(1)
            flipped = searched[flips.any(-1)]
        # 5. W_o + MLP for rows whose input or codes changed
        with self._stage("finish"):
            out = _union(changed, flipped)
            learners = None
            if len(out):
                rows.finish(out, block)
                learners = self._learners_ran(layer, block.mlp, out)
        return LayerReport(fresh, full, searched, flips, out, rotated, updated, keys_count, learners)

    def _learners_ran(self, layer: int, mlp: torch.nn.Module, rows: torch.Tensor) -> torch.Tensor | None:
        """The learners an adaptive MLP ran for ``rows`` on its last call (its ``last_learners``,
        one count per row; a padded call's extra rows dropped), added to this call's per-row
        total (``UpdateStats.row_learners``). For an ACM model also kept per row in the state,
        and their sum returned (a 0-d tensor, read after the loop) for the op count; None
        otherwise (a plain MLP, or a stand-in that only reports learners)."""
        ran = getattr(mlp, "last_learners", None)
        if not isinstance(ran, torch.Tensor):
            return None
        ran = ran.reshape(-1)[: len(rows)]
        if self._learners is None:
            self._learners = torch.zeros(self.state.capacity, dtype=torch.float32, device=self.state.device)
        self._learners[rows] += ran.to(self._learners.dtype)
        if self.cfg.acm is None:
            return None
        self.state.learners[layer, rows] = ran.to(torch.int8)
        return ran.sum()

    def _update_tail(
        self, rows: LayerState, fresh: torch.Tensor, call: _Call, keys: torch.Tensor, values: torch.Tensor,
        key_coord: torch.Tensor, keys_out: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Update the accumulators of rows at index >= ``call.first`` that are not ``fresh``
        for the changed keys (the first ``keys_out`` leave, the rest arrive). Returns the
        slots updated, and masks of those to recompute in full (cancellation) and to search
        (slack used up)."""
        st, dev, first = self.state, keys.device, call.first
        added = torch.arange(keys.shape[1], device=dev) >= keys_out
        update = partial(
            _update, keys=keys, values=values, key_coord=key_coord, added=added,
            cancel_ratio=self.recompute.cancel_ratio,
        )
        if 2 * len(fresh) <= st.n - first:
            # mostly reused rows: update in place the slot range that holds the tail (rows in
            # it from before the first change see no changed key: they stay exactly as they are)
            updated = torch.arange(call.lowest, st.used, device=dev)
            slack, cancelled = rows.update_range(call.lowest, update)
            skip = st.rank[call.lowest : st.used] < first
            skip[fresh[fresh >= call.lowest] - call.lowest] = True
        else:  # mostly fresh rows: gather the others, update, scatter back
            is_fresh = torch.zeros(st.used, dtype=torch.bool, device=dev)
            is_fresh[fresh] = True
            updated = st.order[first:]
            updated = updated[~is_fresh[updated]]
            slack, cancelled = rows.update_rows(updated, update)
            skip = torch.zeros(len(updated), dtype=torch.bool, device=dev)
        redo = cancelled.any(0) & ~skip
        look = self.recompute.must_search(slack) & ~skip & ~redo
        return updated, redo, look


def _update(q, o, lse, row_coord, *, keys, values, key_coord, added, cancel_ratio):
    return update_rows_(q, o, lse, row_coord, keys, values, key_coord, added, cancel_ratio)


def _same(slots: torch.Tensor) -> torch.Tensor:
    return slots


def _union(first: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
    """Sorted union of index tensors (``first`` itself when the others are empty)."""
    rest = [t for t in others if len(t)]
    if not rest:
        return first
    return torch.unique(torch.cat([first, *rest]))


__all__ = ["IncrementalSession"]
