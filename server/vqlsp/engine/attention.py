"""Attention for a subset of query rows: in full, or by updating cached accumulators.

Each (row, head) keeps its attention output ``o`` (already normalised) and the
log-sum-exp ``lse`` of its scores; together they are the running
(max, denominator, numerator) of DESIGN.md with the denominator folded into the
max: ``o = num / s`` and ``lse = m + log s`` (so ``s`` is always 1 and never
under- or overflows, and ``lse`` is a valid stabiliser because lse >= max score).

When an edit removes keys R (deleted rows, or the old version of rows whose k/v
changed) and adds keys A, a surviving row's new output is, with weights relative
to its current mass ``w_j = exp(score_j - lse)``::

    total = 1 - sum_R w_j + sum_A w_j
    o'    = (o - sum_R w_j v_j + sum_A w_j v_j) / total
    lse'  = lse + log(total)

That costs ``2*Dh`` multiply-adds per (row, head, changed key). Removing most of
a row's mass would turn float rounding into a large relative error
(cancellation), so a row whose remaining mass falls below ``cancel_ratio`` of
what it had (plus what was added) is flagged and recomputed in full instead.

Precision: everything is float32, like the model. The update is exact algebra;
its rounding error per edit is a few ulps of ``o`` (amplified at most
``1 / cancel_ratio`` times), and it does not compound into a bias because every
edit rewrites ``o`` from a sum that is dominated by unchanged terms. The drift
test (2,000 edits) measures it; no float64 is needed.

Tensors are head-major, as the session stores them: q (H, rows, Dh) against
k, v (Hkv, keys, Dh), grouped-query: query head h reads kv head ``h // (H // Hkv)``,
as in ``dense_attention``.
"""

from __future__ import annotations

import math

import torch

from .. import native

# score tensors (and masks) are built in chunks of at most this many floats
CHUNK_ELEMENTS = 1 << 23
# an arriving key whose weight exceeds the row's mass by more than e^80 (exp overflows
# float32 at e^88) sends the row to a full recompute
MAX_LOG_WEIGHT = 80.0
OVERFLOW_WEIGHT = math.exp(MAX_LOG_WEIGHT) * (1 - 1e-3)
# PyTorch's fused CPU flash attention, which also returns the log-sum-exp (private op)
_FLASH_CPU = getattr(getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None), "default", None)


def attend_rows(
    q: torch.Tensor, row_rank: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_rank: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal attention for some query rows over keys held in any order (head-major).

    q (H, R, Dh) with the document indices ``row_rank`` (R,); keys k, v (Hkv, S, Dh)
    with indices ``key_rank`` (S,), -1 for a slot that holds no token. A row attends
    the keys whose index is at most its own. Returns o (H, R, Dh) and lse (H, R).
    On the CPU this uses PyTorch's fused flash-attention kernel (which also returns
    the log-sum-exp); elsewhere an explicit masked softmax, in chunks of rows.
    """
    if q.device.type == "cpu" and _FLASH_CPU is not None and q.dtype == torch.float32:
        return _attend_rows_flash(q, row_rank, k, v, key_rank)
    return _attend_rows_explicit(q, row_rank, k, v, key_rank)


def _hidden_keys(row_rank: torch.Tensor, key_rank: torch.Tensor) -> torch.Tensor:
    """(R, S) True where a key must not be attended: after the row, or no token."""
    return (key_rank.unsqueeze(0) > row_rank.unsqueeze(1)) | (key_rank < 0).unsqueeze(0)


def _chunks(r: int, floats_per_row: int):
    step = max(1, CHUNK_ELEMENTS // max(floats_per_row, 1))
    for start in range(0, r, step):
        yield start, min(r, start + step)


def _attend_rows_flash(q, row_rank, k, v, key_rank):
    h, r, dh = q.shape
    hkv, s = k.shape[:2]
    g = h // hkv
    o = q.new_empty(h, r, dh)
    lse = q.new_empty(h, r)
    keys = k.unsqueeze(0).expand(g, -1, -1, -1)  # (g, Hkv, S, Dh): query groups as the batch, no copy
    values = v.unsqueeze(0).expand(g, -1, -1, -1)
    for start, stop in _chunks(r, h * s):
        c = stop - start
        qc = q[:, start:stop].reshape(hkv, g, c, dh).transpose(0, 1)  # (g, Hkv, c, Dh)
        bias = q.new_zeros(c, s).masked_fill_(_hidden_keys(row_rank[start:stop], key_rank), float("-inf"))
        out, row_lse = _FLASH_CPU(qc, keys, values, attn_mask=bias[None, None])
        o[:, start:stop] = out.transpose(0, 1).reshape(h, c, dh)
        lse[:, start:stop] = row_lse.transpose(0, 1).reshape(h, c)
    return o, lse


def _attend_rows_explicit(q, row_rank, k, v, key_rank):
    h, r, dh = q.shape
    hkv, s = k.shape[:2]
    g = h // hkv
    scale = 1.0 / math.sqrt(dh)
    o = q.new_empty(h, r, dh)
    lse = q.new_empty(h, r)
    for start, stop in _chunks(r, h * s):
        c = stop - start
        qc = q[:, start:stop].reshape(hkv, g * c, dh)
        scores = torch.bmm(qc, k.transpose(1, 2)).mul_(scale).view(hkv, g, c, s)
        scores.masked_fill_(_hidden_keys(row_rank[start:stop], key_rank)[None, None], float("-inf"))
        row_lse = torch.logsumexp(scores, -1)  # (Hkv, g, c)
        p = scores.sub_(row_lse.unsqueeze(-1)).exp_()
        o[:, start:stop] = torch.bmm(p.view(hkv, g * c, s), v).view(h, c, dh)
        lse[:, start:stop] = row_lse.view(h, c)
    return o, lse


def update_rows_(
    q: torch.Tensor,
    o: torch.Tensor,
    lse: torch.Tensor,
    row_coord: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    key_coord: torch.Tensor,
    added: torch.Tensor,
    cancel_ratio: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Remove/add key contributions to cached rows, in place (head-major).

    q, o (H, U, Dh), lse (H, U), row_coord (U,) doubled coordinates of the rows;
    keys, values (Hkv, J, Dh), key_coord (J,) doubled coordinates, added (J,) bool
    (True: the key arrives, False: it leaves). A key counts for a row when
    ``key_coord < row_coord``. ``o`` and ``lse`` (which may be views of a larger
    buffer) are overwritten with the new values. Returns how far each (head, row)'s
    ``o`` moved (H, U), and ``cancelled`` (H, U) where the update was unsafe and the
    row must be recomputed in full (its ``o``, ``lse`` are then meaningless).
    A row for which no key counts is left exactly as it was.

    On the CPU (float32) it runs in one pass of a C kernel (``native``) when one could be
    built; elsewhere, or without a compiler, in PyTorch ops.
    """
    if q.device.type == "cpu" and q.dtype == torch.float32 and native.available():
        return native.update_rows_(
            q, o, lse, row_coord, keys, values, key_coord, added, cancel_ratio, MAX_LOG_WEIGHT, OVERFLOW_WEIGHT
        )
    h, hkv = q.shape[0], keys.shape[0]
    if h != hkv:  # grouped-query attention: each kv head serves h / hkv query heads
        keys, values = keys.repeat_interleave(h // hkv, 0), values.repeat_interleave(h // hkv, 0)
    return update_rows_torch_(q, o, lse, row_coord, keys, values, key_coord, added, cancel_ratio)


def update_rows_torch_(
    q: torch.Tensor,
    o: torch.Tensor,
    lse: torch.Tensor,
    row_coord: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    key_coord: torch.Tensor,
    added: torch.Tensor,
    cancel_ratio: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``update_rows_`` in PyTorch ops (any device); keys, values (H, J, Dh), one per query head."""
    dh = q.shape[-1]
    # weights relative to the row's current mass, w_j = exp(score_j - lse): (H, U, J),
    # 0 where the key does not count; clamped (and the row recomputed) far past overflow
    s = torch.bmm(q, keys.transpose(1, 2)).mul_(1.0 / math.sqrt(dh)).sub_(lse.unsqueeze(-1))
    s.masked_fill_((key_coord.unsqueeze(0) >= row_coord.unsqueeze(1)).unsqueeze(0), float("-inf"))
    w = s.clamp_max_(MAX_LOG_WEIGHT).exp_()
    sign = added.to(w.dtype).mul_(2).sub_(1)  # +1 arrives, -1 leaves
    net, gained = (w @ torch.stack([sign, added.to(w.dtype)], 1)).unbind(-1)  # (H, U) each
    total = net.add_(1)  # the new mass over the old
    cancelled = (total <= cancel_ratio * (1 + gained)) | (gained >= OVERFLOW_WEIGHT)
    total.masked_fill_(cancelled, 1.0)
    # o' = (o + sum_j sign_j w_j v_j) / total, so o' - o = delta - o * (1 - 1/total)
    delta = torch.bmm(w.mul_(sign).div_(total.unsqueeze(-1)), values)  # (H, U, Dh)
    step = torch.addcmul(delta, o, total.reciprocal().sub_(1).unsqueeze(-1))
    o.add_(step)
    lse.add_(total.log_())
    return torch.linalg.vector_norm(step, dim=-1), cancelled
