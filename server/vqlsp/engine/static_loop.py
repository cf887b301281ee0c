"""The layer loop of an incremental update with static shapes and no host sync (issue 14).

The loop in ``session.py`` reads row counts on the host in every layer (``len`` of index
tensors built by boolean masks, ``torch.unique``, ``bool(redo.any())``): on a GPU each read
waits for the device, and every layer's shapes differ, so nothing can be captured. Here
the same five steps (project, update the tail, attend in full, search codes, finish) run
on row sets held as slot masks, gathered through index tensors of one fixed size per edit,
the *bucket* (``static_rows.py``). What the host needs before the loop (the tail of rows at
or after the first change, the deleted keys, the layer-0 rows) it builds in ``prepare``;
inside the loop nothing is read back, and every decision (attend everything, a cancelled
update, a code that must be searched) is a mask computed on the device.

The number of rows a later layer changes is not known before the loop, so the loop runs
speculatively: a set larger than the bucket is computed only up to the bucket and raises
the overflow flag. The session reads that flag, with all the layers' counts, in one
transfer after the loop; on an overflow it puts back what the loop wrote (``UndoLog``,
kept only when the bucket is smaller than the tail and an overflow is possible) and runs
the edit again with a larger bucket. Undo instead of checking before writing, because a
later layer's rows depend on what the earlier layers wrote.

Padding is the sink slot: a padded entry reads and writes only that slot, and a padded key
has a coordinate (``NEVER``) past every row, so it counts for none. The tail update runs on
every tail row each layer (rows whose keys did not change are left exactly as they were),
where the dynamic loop updates only what a changed key reaches: on a GPU that costs little;
on the CPU it is why the dynamic loop stays the default there.

``run_layers`` is a function of the model, the state's buffers and a ``StaticEdit`` whose
Python-level facts (buckets, tail size, key range, padded deleted-key count, capacity, undo) fix
every shape: the unit a CUDA graph captures (``graphs.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from .attention import attend_rows, update_rows_
from .buckets import bucket_size
from .policy import RecomputePolicy
from .state import LayerState, SessionState
from .static_rows import mask_of, take

NEVER = 1 << 60  # the coordinate of a padded key: after every row, so it counts for none

# columns of ``LoopResult.counts``, one row per layer (device counts, read after the loop)
FRESH, FULL, SEARCHED, FLIPS, OUT, TOUCHED, ATTENTION_KEYS, UPDATED, UPDATE_KEYS, OVERFLOW = range(10)
ROW_COLUMNS = (FRESH, FULL, OUT)  # the sets that must fit ``StaticEdit.bucket``


@dataclass
class StaticEdit:
    """One edit's inputs to the static loop, built on the host before it (device tensors;
    slot masks have ``capacity + 1`` entries, the sink's always False)."""

    bucket: int  # rows each per-layer set through the matmuls and attention may hold
    search_bucket: int  # rows whose codes each layer may search
    undo: bool  # keep an undo log (the bucket is smaller than the tail: it may overflow)
    tail: torch.Tensor  # (T,) slots of the rows at index >= first, in document order, then the sink
    in_tail: torch.Tensor  # (S,) bool: the slot holds a row at index >= first
    is_new: torch.Tensor  # (S,) bool: the slot holds an inserted token
    rotated: torch.Tensor  # (S,) bool: RoPE, the row's position id alone moved
    changed: torch.Tensor  # (S,) bool: the row's layer-0 input changed
    gone_k: torch.Tensor  # (L, Hkv, G, Dh) keys of deleted tokens, padded with zeros
    gone_v: torch.Tensor
    gone_coord: torch.Tensor  # (G,) their doubled coordinates, padded with NEVER
    gone: torch.Tensor  # 0-d long: how many deleted keys are real
    keys: int  # attention in full reads the key slots below this (``used`` padded to a bucket)
    first: torch.Tensor  # 0-d long: the first index whose row may change
    n: torch.Tensor  # 0-d long: tokens after the edit

    def shape_key(self, state: SessionState) -> tuple:
        """What fixes every shape of the loop (one captured graph per key)."""
        return (self.bucket, self.search_bucket, self.undo, self.tail.numel(), self.keys, self.gone_coord.numel(),
                state.capacity)


def prepare(
    state: SessionState, changed: torch.Tensor, rotated: torch.Tensor, is_new: torch.Tensor,
    gone_k: torch.Tensor, gone_v: torch.Tensor, gone_coord: torch.Tensor, first: int, bucket: int,
    search_bucket: int,
) -> StaticEdit:
    """The ``StaticEdit`` of an edit whose slots are arranged and layer-0 rows embedded
    (``IncrementalSession._prepare``): ``changed``/``rotated`` slot lists, ``is_new``
    (capacity,) bool, the deleted keys (L, Hkv, G, Dh) and coordinates (G,)."""
    st, dev = state, state.device
    slots = st.capacity + 1
    tail_rows = st.order[first:]
    tail = torch.full((bucket_size(len(tail_rows)),), st.sink, dtype=torch.long, device=dev)
    tail[: len(tail_rows)] = tail_rows
    g, padded_g = len(gone_coord), bucket_size(len(gone_coord))
    pad = padded_g - g
    return StaticEdit(
        bucket=bucket,
        search_bucket=search_bucket,
        undo=min(bucket, search_bucket) < len(tail_rows),
        tail=tail,
        in_tail=mask_of(tail_rows, slots),
        is_new=torch.cat([is_new, is_new.new_zeros(slots - len(is_new))]),
        rotated=mask_of(rotated, slots),
        changed=mask_of(changed, slots),
        gone_k=torch.nn.functional.pad(gone_k, (0, 0, 0, pad)),
        gone_v=torch.nn.functional.pad(gone_v, (0, 0, 0, pad)),
        gone_coord=torch.nn.functional.pad(gone_coord, (0, pad), value=NEVER),
        gone=torch.tensor(g, device=dev),
        keys=min(bucket_size(st.used), st.capacity),
        first=torch.tensor(first, device=dev),
        n=torch.tensor(st.n, device=dev),
    )


class Overwritten(NamedTuple):
    """The rows one layer overwrote, as they were: every other row it wrote lies in the tail."""

    layer: int
    fresh: torch.Tensor  # slots given new q, k, v, and their old (q, k, v)
    qkv: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    tail: torch.Tensor  # the tail's slots and their old (o, lse, slack) (attention and search write there)
    attention: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    searched: torch.Tensor  # slots whose codes were searched, and their old codes
    codes: torch.Tensor
    out: torch.Tensor  # slots whose output was written, and their old outputs
    x_out: torch.Tensor


@dataclass
class UndoLog:
    """What each layer of a speculative run overwrote, to put back if it overflowed."""

    layers: list[Overwritten] = field(default_factory=list)

    @torch.inference_mode()
    def restore(self, state: SessionState) -> None:
        """Put every overwritten row back, last layer first (the sink may get any of its
        padded copies' values: no token reads it)."""
        for w in reversed(self.layers):
            rows = state.layer(w.layer)
            rows.x_out[w.out] = w.x_out
            rows.codes[w.searched] = w.codes
            rows.o[:, w.tail], rows.lse[:, w.tail], rows.slack[:, w.tail] = w.attention
            rows.q[:, w.fresh], rows.k[:, w.fresh], rows.v[:, w.fresh] = w.qkv


@dataclass
class LoopResult:
    """What the loop leaves for the host (device tensors, read after it)."""

    counts: torch.Tensor  # (layers, 10) long, columns named above
    work: torch.Tensor  # (S,) int32: layers at which each slot's row changed
    out: torch.Tensor  # (S,) bool: rows whose last layer's output changed
    undo: UndoLog | None  # None when the edit could not overflow


def run_layers(model, state: SessionState, policy: RecomputePolicy, edit: StaticEdit) -> LoopResult:
    """Every layer of one edit: no host sync, shapes fixed by ``edit.shape_key``."""
    work = torch.zeros(state.capacity + 1, dtype=torch.int32, device=state.device)
    undo = UndoLog() if edit.undo else None
    changed, counts = edit.changed, []
    for layer in range(model.cfg.depth):
        changed, layer_counts = _layer(model, state, policy, edit, layer, changed, work, undo)
        counts.append(layer_counts)
    return LoopResult(torch.stack(counts), work, changed, undo)


def _layer(model, st: SessionState, policy: RecomputePolicy, edit: StaticEdit, layer: int,
           changed: torch.Tensor, work: torch.Tensor, undo: UndoLog | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer: ``changed`` (S,) bool, rows whose input changed -> rows whose output changed,
    and the layer's counts."""
    block, rows, rank = model.blocks[layer], st.layer(layer), st.rank
    size, sink, slots = edit.bucket, st.sink, st.capacity + 1
    # 1. new q, k, v for rows whose input (or RoPE position) changed; their old k, v leave
    fresh_mask = changed | edit.rotated
    fresh, n_fresh = take(fresh_mask, size, sink)
    real = fresh_mask[fresh]  # False on padding
    survivor = real & ~edit.is_new[fresh]
    old_q, old_k, old_v = rows.q[:, fresh], rows.k[:, fresh], rows.v[:, fresh]
    k, v = rows.project(fresh, block, model.positional)
    coord = 2 * rank[fresh]
    keys, values = torch.cat([edit.gone_k[layer], old_k, k], 1), torch.cat([edit.gone_v[layer], old_v, v], 1)
    key_coord = torch.cat([edit.gone_coord, torch.where(survivor, coord, NEVER), torch.where(real, coord, NEVER)])
    added = torch.arange(keys.shape[1], device=keys.device) >= keys.shape[1] - size
    n_keys = edit.gone + survivor.sum() + n_fresh
    attend_all = policy.attend_all(n_keys, edit.first, edit.n)
    # 2. accumulator update of every tail row (a row no changed key reaches stays as it was)
    tail = edit.tail
    q, o, lse, slack = rows.q[:, tail], rows.o[:, tail], rows.lse[:, tail], rows.slack[:, tail]
    before = (o.clone(), lse.clone(), slack) if undo is not None else None
    moved, cancelled = update_rows_(q, o, lse, 2 * rank[tail], keys, values, key_coord, added, policy.cancel_ratio)
    slack = slack - moved
    rows.o[:, tail], rows.lse[:, tail], rows.slack[:, tail] = o, lse, slack
    skip = ~edit.in_tail[tail] | fresh_mask[tail]
    redo = cancelled.any(0) & ~skip
    look = policy.must_search(slack) & ~skip & ~redo & (n_keys > 0) & ~attend_all
    # 3. attention in full: fresh rows and cancelled updates, or the whole tail
    full_mask = torch.where(attend_all, edit.in_tail, fresh_mask | mask_of(tail, slots, redo))
    full, n_full = take(full_mask, size, sink)
    _attend(rows, full, rank, edit.keys)
    # 4. code search where the slack ran out, and for every row attended in full
    searched_mask = full_mask | mask_of(tail, slots, look)
    searched, n_searched = take(searched_mask, edit.search_bucket, sink)
    old_codes = rows.codes[searched]
    flips = rows.search(searched, block.vq.codebook) & (searched_mask[searched] & ~edit.is_new[searched]).unsqueeze(1)
    # 5. W_o + MLP for rows whose input or codes changed
    out_mask = changed | mask_of(searched, slots, flips.any(-1))
    out, n_out = take(out_mask, size, sink)
    if undo is not None:
        undo.layers.append(Overwritten(layer, fresh, (old_q, old_k, old_v), tail, before, searched, old_codes, out,
                                       rows.x_out[out]))
    rows.finish(out, block)
    touched = out_mask | edit.rotated
    work += touched
    updating = ~attend_all & (n_keys > 0)
    overflow = (n_fresh > size) | (n_full > size) | (n_searched > edit.search_bucket) | (n_out > size)
    counts = torch.stack([
        n_fresh, n_full, n_searched, flips.sum(), n_out, touched.sum(),
        torch.where(full_mask[full], rank[full] + 1, 0).sum(),
        torch.where(updating, (~skip).sum(), 0), torch.where(updating, n_keys, 0), overflow.long(),
    ])
    return out_mask, counts


def _attend(rows: LayerState, slots: torch.Tensor, rank: torch.Tensor, keys: int) -> None:
    """Attention in full of ``slots`` over the key slots below ``keys`` (free ones are masked
    by their rank); a padded row attends as if at index 0, so that its output (never read)
    stays finite."""
    o, lse = attend_rows(rows.q[:, slots], rank[slots].clamp_min(0), rows.k[:, :keys], rows.v[:, :keys], rank[:keys])
    rows.o[:, slots], rows.lse[:, slots] = o, lse


__all__ = ["LoopResult", "StaticEdit", "UndoLog", "prepare", "run_layers"]
