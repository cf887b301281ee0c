"""The cached per-document state of an incremental session: row buffers addressed by slot.

A token's row lives in a *slot* of every buffer (the capacity axis) and stays
there while the token lives: an edit never moves rows. ``order[i]`` is the slot of the document's i-th token
and ``rank[slot]`` its index (-1 for a free slot). Deleting a token frees its
slot; inserted tokens reuse the slots their edit freed (a replacement stays in
place) and otherwise take fresh slots after ``used``. Slots then drift out of
document order, so once the waste (free slots below ``used``, tokens given fresh
slots away from the document's end) passes an eighth of the document, ``compact`` gathers every buffer back into
document order: one copy amortised over many edits, where moving rows on every
insertion or deletion would copy half the document's state each time.

Attention never needs slot order: masks compare ranks (``attention.py``).

Every buffer has one more slot than ``capacity``: the *sink* (slot ``capacity``), which
never holds a token (rank -1). The static-shape layer loop (``static_loop.py``) pads its
fixed-size row sets with it, so that a padded entry reads and writes a row no token owns.

Per layer l and slot s (float32 unless noted; attention buffers head-major):

* ``x[l]``      the residual input of layer l (``x[depth]`` is the last output)
* ``q, k, v``   post-norm, post-RoPE projections (k, v have the kv heads)
* ``o, lse``    the attention accumulators (see ``attention.py``)
* ``slack``     how far ``o`` may still move before its code could flip: the
                margin at the last search minus the distance moved since
* ``codes``     the chosen code per head (int16)
* ``hidden``    the final states (after norm_f / project_out)
* ``ids, pos``  token id and position id
* ``learners``  ACM models: learners the row's MLP ran (int8; 0 in layers without ACM)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model.vq import nearest_codes
from .attention import attend_rows
from .plan import EditPlan

# compact once free slots plus out-of-place tokens exceed max(this, n / 8)
MIN_WASTE = 32


@dataclass
class Rearranged:
    """Where one edit call's rows went (slots are long tensors)."""

    deleted: torch.Tensor  # slots of the deleted tokens (already reused or freed)
    inserted: torch.Tensor  # slots of the inserted tokens, in document order
    lowest_tail_slot: int  # the lowest slot holding a token at index >= plan.first_change


class SessionState:
    """Owns the row buffers: ``n`` live tokens in slots below ``used`` out of ``capacity``
    (plus the sink slot, ``capacity``)."""

    def __init__(self, cfg, hidden_dim: int, device: torch.device, dtype: torch.dtype, capacity: int = 64):
        self.cfg = cfg
        self.hidden_dim = hidden_dim
        self.device = device
        self.dtype = dtype
        self.n = self.used = self.capacity = 0
        self.appended = 0  # tokens given fresh slots out of document order since the last compaction
        self.order = torch.zeros(0, dtype=torch.long, device=device)
        self.rank = torch.zeros(0, dtype=torch.long, device=device)
        self._alloc(capacity)

    def _shapes(self) -> dict[str, tuple[tuple[int | None, ...], torch.dtype]]:
        """Each buffer's shape, ``None`` marking the slot axis. Attention buffers are
        head-major, (layers, heads, slots, ...), so that one head's rows are a matrix that
        batched matmuls read and update in place."""
        c, L = self.cfg, self.cfg.depth
        h, kv, dh, f = c.n_heads, c.n_kv_heads, c.d_head, self.dtype
        shapes = {
            "x": ((L + 1, None, c.d_model), f),
            "q": ((L, h, None, dh), f),
            "k": ((L, kv, None, dh), f),
            "v": ((L, kv, None, dh), f),
            "o": ((L, h, None, dh), f),
            "lse": ((L, h, None), f),
            "slack": ((L, h, None), f),
            "codes": ((L, None, h), torch.int16 if c.vq.codebook_size <= 32767 else torch.int32),
            "hidden": ((None, self.hidden_dim), f),
            "ids": ((None,), torch.long),
            "pos": ((None,), torch.long),
        }
        if c.acm is not None:
            shapes["learners"] = ((L, None), torch.int8)
        return shapes

    # --- reading rows in document order ---------------------------------------------------

    def rows(self, name: str, layer: int | None = None) -> torch.Tensor:
        """A buffer's live rows in document order, token axis first (a copy): (n, ...)."""
        shape, _ = self._shapes()[name]
        buf, axis = getattr(self, name), shape.index(None)
        if layer is not None:
            buf, axis = buf[layer], axis - 1
        return buf.index_select(axis, self.order).movedim(axis, 0)

    # --- capacity -------------------------------------------------------------------------

    def _alloc(self, capacity: int) -> None:
        """(Re)allocate every buffer with ``capacity`` slots and the sink, keeping slots below ``used``."""
        for name, (shape, dtype) in self._shapes().items():
            axis = shape.index(None)
            buf = torch.zeros([capacity + 1 if d is None else d for d in shape], dtype=dtype, device=self.device)
            if self.used:
                buf.narrow(axis, 0, self.used).copy_(getattr(self, name).narrow(axis, 0, self.used))
            setattr(self, name, buf)
        rank = torch.full((capacity + 1,), -1, dtype=torch.long, device=self.device)
        rank[: self.used] = self.rank[: self.used]
        self.rank = rank
        self.capacity = capacity

    @property
    def sink(self) -> int:
        """The slot that never holds a token (padding of static row sets writes there)."""
        return self.capacity

    def compact(self) -> None:
        """Gather every buffer into document order: token i in slot i, no free slot below ``n``."""
        n, order = self.n, self.order
        for name, (shape, _) in self._shapes().items():
            buf, axis = getattr(self, name), shape.index(None)
            buf.narrow(axis, 0, n).copy_(buf.index_select(axis, order))
        self.order = torch.arange(n, device=self.device)
        self.rank[:n] = self.order
        self.rank[n:] = -1
        self.used, self.appended = n, 0

    def _waste(self) -> int:
        return (self.used - self.n) + self.appended

    # --- edits ----------------------------------------------------------------------------

    def rearrange(self, plan: EditPlan) -> Rearranged:
        """Give the plan's inserted tokens slots, free the deleted ones, renumber ranks.
        (Compacts first when the waste has grown too large; buffer contents are not written.)"""
        if self._waste() > max(MIN_WASTE, self.n // 8):
            self.compact()
        old, fresh = self.order, self.used
        pieces, deleted, inserted = [], [], []
        previous_end = 0
        for e in plan.edits:
            gone = old[e.start : e.end]
            reuse = min(len(gone), len(e.new_ids))
            slots = [gone[:reuse]]
            if len(e.new_ids) > reuse:
                slots.append(torch.arange(fresh, fresh + len(e.new_ids) - reuse, device=self.device))
                fresh += len(e.new_ids) - reuse
            pieces += [old[previous_end : e.start], *slots]
            deleted.append(gone)
            inserted += slots
            previous_end = e.end
        pieces.append(old[previous_end:])
        if fresh > self.capacity:
            self._alloc(max(fresh, 2 * self.capacity, 16))
        if plan.edits and plan.edits[-1].start < plan.old_len:  # not all of them at the end
            self.appended += fresh - self.used
        self.used, self.n = fresh, plan.new_len
        self.order = _cat(pieces, self.device)
        deleted_slots = _cat(deleted, self.device)
        self.rank[deleted_slots] = -1
        self.rank[self.order] = torch.arange(self.n, device=self.device)
        tail = self.order[plan.first_change :]
        lowest = int(tail.min()) if len(tail) else self.used
        return Rearranged(deleted_slots, _cat(inserted, self.device), lowest)

    def layer(self, layer: int, pad=lambda slots: slots) -> LayerState:
        """Layer ``layer``'s rows and their verbs (``pad``: see ``LayerState``)."""
        return LayerState(self, layer, pad)

    def bytes_per_token(self) -> int:
        """State bytes held per slot (every buffer's row, all layers, and the slot's rank)."""
        total = self.rank.element_size()
        for name in self._shapes():
            buf = getattr(self, name)
            total += buf.numel() // (self.capacity + 1) * buf.element_size()
        return total


def _cat(pieces: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    pieces = [p for p in pieces if len(p)]
    if not pieces:
        return torch.zeros(0, dtype=torch.long, device=device)
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces)


class LayerState:
    """One layer's rows of a ``SessionState``, read and written through the engine's verbs.

    Row sets are slot tensors (long). ``pad`` maps a row set to the set a stage computes
    on (``buckets.padded``, or itself): each verb computes on the padded set and writes
    back only the real rows, so padding never changes what is stored.
    """

    def __init__(self, state: SessionState, layer: int, pad=lambda slots: slots):
        self.state, self.layer, self.pad = state, layer, pad
        st, i = state, layer
        self.x_in, self.x_out = st.x[i], st.x[i + 1]  # (slots, D)
        self.q, self.k, self.v, self.o = st.q[i], st.k[i], st.v[i], st.o[i]  # (heads, slots, Dh)
        self.lse, self.slack, self.codes = st.lse[i], st.slack[i], st.codes[i]

    def cached_kv(self, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values held for ``slots`` (Hkv, R, Dh), copies (read before ``project``
        overwrites them)."""
        return self.k[:, slots], self.v[:, slots]

    def project(self, slots: torch.Tensor, block, positional) -> tuple[torch.Tensor, torch.Tensor]:
        """New q, k, v of ``slots`` from their inputs (norm1, projections, RoPE at their
        position ids), stored; returns the new k, v (Hkv, R, Dh)."""
        rows = self.pad(slots)
        q, k, v = (t[: len(slots)].transpose(0, 1) for t in block.qkv(self.x_in[rows], positional(self.state.pos[rows])))
        self.q[:, slots], self.k[:, slots], self.v[:, slots] = q, k, v
        return k, v

    def attend(self, slots: torch.Tensor) -> None:
        """Attention of ``slots`` in full over every live key; stores o and lse."""
        st, rows = self.state, self.pad(slots)
        used = st.used
        o, lse = attend_rows(self.q[:, rows], st.rank[rows], self.k[:, :used], self.v[:, :used], st.rank[:used])
        self.o[:, slots], self.lse[:, slots] = o[:, : len(slots)], lse[:, : len(slots)]

    def update_range(self, start: int, update) -> tuple[torch.Tensor, torch.Tensor]:
        """Update the accumulators of the slot range [start, used) in place:
        ``update(q, o, lse, row_coord)`` (views) returns how far each (head, row) moved and
        the cancelled mask; the slack is charged with the move. Returns (slack, cancelled)."""
        sel = slice(start, self.state.used)
        moved, cancelled = update(self.q[:, sel], self.o[:, sel], self.lse[:, sel], 2 * self.state.rank[sel])
        return self.slack[:, sel].sub_(moved), cancelled

    def update_rows(self, slots: torch.Tensor, update) -> tuple[torch.Tensor, torch.Tensor]:
        """``update_range`` for a gathered set of slots (written back)."""
        o, lse = self.o[:, slots], self.lse[:, slots]
        moved, cancelled = update(self.q[:, slots], o, lse, 2 * self.state.rank[slots])
        slack = self.slack[:, slots] - moved
        self.o[:, slots], self.lse[:, slots], self.slack[:, slots] = o, lse, slack
        return slack, cancelled

    def search(self, slots: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        """Nearest codes of ``slots`` from their attention outputs; stores codes and resets the
        slack to the new margins. Returns (R, H) bool: where a code changed."""
        rows = self.pad(slots)
        codes, margins = nearest_codes(self.o[:, rows].transpose(0, 1), codebook)
        codes, margins = codes[: len(slots)], margins[: len(slots)]
        changed = codes != self.codes[slots]
        self.codes[slots], self.slack[:, slots] = codes.to(self.codes.dtype), margins.t()
        return changed

    def finish(self, slots: torch.Tensor, block) -> None:
        """The rest of the block for ``slots``: W_o of their codes' vectors, the residual, the
        MLP (``block.finish``, whatever MLP module the block holds); stores the outputs."""
        rows = self.pad(slots)
        c = block.vq.lookup(self.codes[rows].long())
        self.x_out[slots] = block.finish(self.x_in[rows], c)[: len(slots)]
