"""Attention for a subset of query rows: in full, or by updating cached accumulators.

Each (row, head) keeps its attention output ``o`` (already normalised) and the
log-sum-exp ``lse`` of its scores; together they are the running
(max, denominator, numerator) of DESIGN.md with the denominator folded into the
max: ``o = num / s`` and ``lse = m + log s`` (so ``s`` is always 1 and never
under- or overflows, and ``lse`` is a valid stabiliser because lse >= max score).

When an edit removes keys R (deleted rows, or the old version of rows whose k/v
changed) and adds keys A, a surviving row's new output is, with ``m* = max(lse,
max_A score)`` and weights ``w_j = exp(score_j - m*)``::

    total = exp(lse - m*) - sum_R w_j + sum_A w_j
    o'    = (o * exp(lse - m*) - sum_R w_j v_j + sum_A w_j v_j) / total
    lse'  = m* + log(total)

That costs ``2*Dh`` multiply-adds per (row, head, changed key). Removing most of
a row's mass would turn float rounding into a large relative error
(cancellation), so a row whose remaining mass falls below ``cancel_ratio`` of
what it had (plus what was added) is flagged and recomputed in full instead.

Precision: everything is float32, like the model. The update is exact algebra;
its rounding error per edit is a few ulps of ``o`` (amplified at most
``1 / cancel_ratio`` times), and it does not compound into a bias because every
edit rewrites ``o`` from a sum that is dominated by unchanged terms. The drift
test (2,000 edits) measures it; no float64 is needed.

Keys and values are grouped-query: q (..., H, Dh) against k, v (..., Hkv, Dh),
query head h reads kv head ``h // (H // Hkv)``, as in ``dense_attention``.
"""

from __future__ import annotations

import math

import torch

# score tensors (and masks) are built in chunks of at most this many floats
CHUNK_ELEMENTS = 1 << 23
# PyTorch's fused CPU flash attention, which also returns the log-sum-exp (private op)
_FLASH_CPU = getattr(getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None), "default", None)


def attend_rows(
    q: torch.Tensor, rows: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal attention for query rows ``rows`` (R,) sorted, q (R, H, Dh), over keys k, v (n, Hkv, Dh).

    Row i attends keys 0..i. Returns o (R, H, Dh) and lse (R, H). On the CPU this
    uses PyTorch's fused flash-attention kernel (which also returns the
    log-sum-exp); elsewhere an explicit masked softmax in chunks.
    """
    if q.device.type == "cpu" and _FLASH_CPU is not None and q.dtype == torch.float32:
        return _attend_rows_flash(q, rows, k, v)
    return _attend_rows_explicit(q, rows, k, v)


def _chunks(rows: torch.Tensor, width: int):
    """Split sorted ``rows`` into runs whose score blocks (rows x keys x width) stay small."""
    r, start = len(rows), 0
    last = rows.tolist()
    while start < r:
        step = max(1, CHUNK_ELEMENTS // (width * (last[min(r - 1, start)] + 1)))
        stop = min(r, start + step)
        yield start, stop, last[stop - 1] + 1
        start = stop


def _attend_rows_flash(q, rows, k, v):
    r, h, dh = q.shape
    hkv = k.shape[1]
    g = h // hkv
    o = q.new_empty(r, h, dh)
    lse = q.new_empty(r, h)
    kt, vt = k.transpose(0, 1), v.transpose(0, 1)  # (Hkv, n, Dh)
    for start, stop, nk in _chunks(rows, h):
        c = stop - start
        qc = q[start:stop].view(c, hkv, g, dh).permute(2, 1, 0, 3)  # (g, Hkv, c, Dh): query groups as batch
        keys = kt[:, :nk].unsqueeze(0).expand(g, -1, -1, -1)  # (g, Hkv, nk, Dh), no copy
        values = vt[:, :nk].unsqueeze(0).expand(g, -1, -1, -1)
        future = torch.arange(nk, device=q.device) > rows[start:stop].unsqueeze(1)  # (c, nk)
        bias = torch.zeros(c, nk, dtype=q.dtype, device=q.device).masked_fill_(future, float("-inf"))
        out, row_lse = _FLASH_CPU(qc, keys, values, attn_mask=bias[None, None])
        o[start:stop] = out.permute(2, 1, 0, 3).reshape(c, h, dh)
        lse[start:stop] = row_lse.permute(2, 1, 0).reshape(c, h)
    return o, lse


def _attend_rows_explicit(q, rows, k, v):
    r, h, dh = q.shape
    hkv = k.shape[1]
    g = h // hkv
    scale = 1.0 / math.sqrt(dh)
    o = q.new_empty(r, h, dh)
    lse = q.new_empty(r, h)
    kt = k.permute(1, 2, 0)  # (Hkv, Dh, n)
    vt = v.permute(1, 0, 2)  # (Hkv, n, Dh)
    for start, stop, nk in _chunks(rows, h):
        c = stop - start
        qc = q[start:stop].view(c, hkv, g, dh).permute(1, 0, 2, 3).reshape(hkv, c * g, dh)
        s = torch.bmm(qc, kt[:, :, :nk]).mul_(scale).view(hkv, c, g, nk)  # (Hkv, c, g, nk)
        future = torch.arange(nk, device=q.device) > rows[start:stop].unsqueeze(1)  # (c, nk)
        s.masked_fill_(future[None, :, None, :], float("-inf"))
        row_lse = torch.logsumexp(s, -1)  # (Hkv, c, g)
        p = s.sub_(row_lse.unsqueeze(-1)).exp_()
        oc = torch.bmm(p.view(hkv, c * g, nk), vt[:, :nk])  # (Hkv, c*g, Dh)
        o[start:stop] = oc.view(hkv, c, g, dh).permute(1, 0, 2, 3).reshape(c, h, dh)
        lse[start:stop] = row_lse.permute(1, 0, 2).reshape(c, h)
    return o, lse


def update_rows(
    q: torch.Tensor,
    o: torch.Tensor,
    lse: torch.Tensor,
    row_coord: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    key_coord: torch.Tensor,
    added: torch.Tensor,
    cancel_ratio: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Remove/add key contributions to cached rows.

    q, o (U, H, Dh), lse (U, H), row_coord (U,) doubled coordinates of the rows;
    keys, values (J, Hkv, Dh), key_coord (J,) doubled coordinates, added (J,) bool
    (True: the key arrives, False: it leaves). A key counts for a row when
    ``key_coord < row_coord``. Returns new o (U, H, Dh), new lse (U, H) and
    ``cancelled`` (U, H) where the update is unsafe and the row must be recomputed
    (its returned values are then meaningless).
    """
    u, h, dh = q.shape
    j, hkv = keys.shape[:2]
    g = h // hkv
    scale = 1.0 / math.sqrt(dh)
    qg = q.view(u, hkv, g, dh).transpose(0, 1)  # (Hkv, U, g, Dh)
    s = torch.matmul(qg.reshape(hkv, u * g, dh), keys.permute(1, 2, 0)).mul_(scale)  # (Hkv, U*g, J)
    s = s.view(hkv, u, g, j)
    counts = key_coord.unsqueeze(0) < row_coord.unsqueeze(1)  # (U, J)
    s.masked_fill_(~counts[None, :, None, :], float("-inf"))
    top = s.masked_fill(~added, float("-inf")).amax(-1)  # (Hkv, U, g)
    lse_g = lse.view(u, hkv, g).transpose(0, 1)  # (Hkv, U, g)
    m = torch.maximum(lse_g, top)
    w = s.sub_(m.unsqueeze(-1)).exp_()  # (Hkv, U, g, J), 0 where the key does not count
    old = torch.exp(lse_g - m)
    gained = (w * added).sum(-1)
    signed = torch.where(added, w, -w)
    total = old + signed.sum(-1)
    cancelled = total <= cancel_ratio * (old + gained)
    total = torch.where(cancelled, torch.ones_like(total), total)
    # o' = o * old/total + sum_j signed_j/total * v_j
    coef = (signed / total.unsqueeze(-1)).view(hkv, u * g, j)
    delta = torch.bmm(coef, values.transpose(0, 1))  # (Hkv, U*g, Dh)
    delta = delta.view(hkv, u, g, dh).transpose(0, 1).reshape(u, h, dh)
    keep = (old / total).transpose(0, 1).reshape(u, h, 1)
    o_new = torch.addcmul(delta, o, keep)
    lse_new = (m + torch.log(total)).transpose(0, 1).reshape(u, h)
    return o_new, lse_new, cancelled.transpose(0, 1).reshape(u, h)
