"""The fused C update (``native/update_rows.c``) against its reference, ``update_rows_torch_``.

Random shapes (grouped-query or not, d_head on every kernel tile and off them, no key, one
row, rows as a slot range of a larger buffer), random keys leaving and arriving around the
rows' coordinates, peaked scores so that rows cancel, and keys heavy enough to overflow:
the kernel must flag the same rows and give the same o, lse and distances to float rounding,
leave rows that see no key bit for bit and cancelled rows as they were.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vqlsp import native
from vqlsp.engine.attention import MAX_LOG_WEIGHT, OVERFLOW_WEIGHT, update_rows_, update_rows_torch_

pytestmark = pytest.mark.skipif(not native.available(), reason="no C compiler: the engine uses the PyTorch path")

CANCEL = 0.25


def case(gen, h, hkv, dh, rows, keys, spare, sharp, heavy=False):
    """Head-major buffers as the session holds them: q, o (H, slots, Dh), lse (H, slots), the
    rows a slot range [spare, spare + rows) of them; o, lse those of a real softmax over 64
    keys, some of which then leave (with their coordinates) while new ones arrive."""
    slots = rows + 2 * spare
    q = torch.randn(h, slots, dh, generator=gen) * sharp
    old_k, old_v = torch.randn(hkv, 64, dh, generator=gen), torch.randn(hkv, 64, dh, generator=gen)
    key_coord_old = torch.randint(0, 4 * rows + 8, (64,), generator=gen)
    row_coord = torch.randint(0, 4 * rows + 8, (rows,), generator=gen) | 1  # odd: never equal to a key's
    g = h // hkv
    scores = q[:, spare : spare + rows] @ old_k.repeat_interleave(g, 0).transpose(1, 2) / math.sqrt(dh)
    scores = scores.masked_fill(key_coord_old[None, None, :] >= row_coord[None, :, None], float("-inf"))
    scores[..., 0] = torch.where(scores[..., 0].isinf(), 0.0, scores[..., 0])  # every row sees a key
    lse_rows = torch.logsumexp(scores, -1)
    o_rows = torch.softmax(scores, -1) @ old_v.repeat_interleave(g, 0)
    o, lse = torch.randn(h, slots, dh, generator=gen), torch.randn(h, slots, generator=gen)
    o[:, spare : spare + rows], lse[:, spare : spare + rows] = o_rows, lse_rows
    leaving = torch.randperm(64, generator=gen)[: keys // 2]
    arriving = keys - len(leaving)
    new_k = torch.randn(hkv, arriving, dh, generator=gen)
    if heavy and arriving:
        new_k[:, 0] = q[:, spare].reshape(hkv, g, dh)[:, 0] * 40
    key_k = torch.cat([old_k[:, leaving], new_k], 1)
    key_v = torch.cat([old_v[:, leaving], torch.randn(hkv, arriving, dh, generator=gen)], 1)
    key_coord = torch.cat([key_coord_old[leaving], torch.randint(0, 4 * rows + 8, (arriving,), generator=gen)])
    if heavy and arriving:
        key_coord[len(leaving)] = -1
    added = torch.arange(keys) >= len(leaving)
    return q, o, lse, row_coord, key_k, key_v, key_coord, added


def both(q, o, lse, row_coord, keys, values, key_coord, added, spare, rows):
    sel = slice(spare, spare + rows)
    g = q.shape[0] // keys.shape[0]
    o_ref, lse_ref = o.clone(), lse.clone()
    moved_ref, cancelled_ref = update_rows_torch_(
        q[:, sel], o_ref[:, sel], lse_ref[:, sel], row_coord,
        keys.repeat_interleave(g, 0), values.repeat_interleave(g, 0), key_coord, added, CANCEL,
    )
    o_new, lse_new = o.clone(), lse.clone()
    moved, cancelled = native.update_rows_(
        q[:, sel], o_new[:, sel], lse_new[:, sel], row_coord, keys, values, key_coord, added, CANCEL,
        MAX_LOG_WEIGHT, OVERFLOW_WEIGHT,
    )
    return (o_ref, lse_ref, moved_ref, cancelled_ref), (o_new, lse_new, moved, cancelled)


def worst(t: torch.Tensor, exact: torch.Tensor) -> float:
    return float((t.double() - exact).abs().max()) if t.numel() else 0.0


@settings(max_examples=150, deadline=None)
@given(
    heads=st.sampled_from([(9, 3), (4, 4), (4, 1), (2, 1)]),
    dh=st.sampled_from([16, 32, 64, 128, 8, 24]),  # the kernel's tiles (16..128), and its plain loop
    rows=st.integers(1, 40),
    keys=st.sampled_from([0, 1, 2, 5, 16, 17, 40, 70]),
    spare=st.integers(0, 5),
    sharp=st.sampled_from([1.0, 6.0]),  # 6: peaked scores, rows cancel
    heavy=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_kernel_equals_the_reference(heads, dh, rows, keys, spare, sharp, heavy, seed):
    h, hkv = heads
    args = case(torch.Generator().manual_seed(seed), h, hkv, dh, rows, keys, spare, sharp, heavy)
    q, o, lse, row_coord, key_k, key_v, key_coord, added = args
    (o_ref, lse_ref, moved_ref, cancelled_ref), (o_new, lse_new, moved, cancelled) = both(*args, spare, rows)
    sel = slice(spare, spare + rows)
    assert torch.equal(cancelled, cancelled_ref)
    # to float rounding: no further from the update in float64 than the reference itself
    o64, lse64 = o.double(), lse.double()
    moved64, _ = update_rows_torch_(
        q.double()[:, sel], o64[:, sel], lse64[:, sel], row_coord, key_k.double().repeat_interleave(h // hkv, 0),
        key_v.double().repeat_interleave(h // hkv, 0), key_coord, added, CANCEL,
    )
    ok = ~cancelled
    # a float32 dot product of Dh terms is off by about sqrt(Dh) ulps of the sum of their sizes;
    # exp() passes that on, and the update divides it by the remaining mass (>= CANCEL)
    g = h // hkv
    sizes = q[:, sel].abs() @ key_k.abs().repeat_interleave(g, 0).transpose(1, 2) / math.sqrt(dh)
    slack = 1e-6 + math.sqrt(dh) * 6e-8 / CANCEL * (float(sizes.max()) if keys else 0.0)
    for new, ref, exact in ((o_new[:, sel], o_ref[:, sel], o64[:, sel]), (lse_new[:, sel], lse_ref[:, sel], lse64[:, sel]),
                            (moved, moved_ref, moved64)):
        assert worst(new[ok], exact[ok]) <= 2 * worst(ref[ok], exact[ok]) + slack
    assert torch.equal(moved[cancelled], torch.zeros(int(cancelled.sum())))
    # cancelled rows keep their values; slots outside the range are never touched
    assert torch.equal(o_new[:, sel][cancelled], o[:, sel][cancelled])
    assert torch.equal(lse_new[:, sel][cancelled], lse[:, sel][cancelled])
    outside = torch.ones(o.shape[1], dtype=torch.bool)
    outside[sel] = False
    assert torch.equal(o_new[:, outside], o[:, outside]) and torch.equal(lse_new[:, outside], lse[:, outside])
    # a row no key counts for is left bit for bit
    blind = (key_coord[None, :] >= row_coord[:, None]).all(1)
    assert torch.equal(o_new[:, sel][:, blind], o[:, sel][:, blind]) and not bool(moved[:, blind].any())


def test_peaked_rows_cancel_and_heavy_keys_overflow():
    """The cases above reach both reasons for a full recompute, on the reference and the kernel."""
    cancelled = 0
    for seed in range(10):
        args = case(torch.Generator().manual_seed(seed), 9, 3, 64, 16, 17, 0, 6.0)
        (_, _, _, c_ref), (_, _, _, c) = both(*args, 0, 16)
        assert torch.equal(c, c_ref)
        cancelled += int(c.sum())
        args = case(torch.Generator().manual_seed(seed), 9, 3, 64, 16, 17, 0, 1.0, heavy=True)
        (_, _, _, c_ref), (_, _, _, c) = both(*args, 0, 16)
        assert torch.equal(c, c_ref) and bool(c[::3, 0].all())
    assert cancelled > 0


def test_the_dispatcher_uses_the_kernel_on_float32_and_pytorch_otherwise(monkeypatch):
    """float32 CPU rows go to the kernel with the kv heads as they are; any other dtype to the
    PyTorch path with grouped-query keys expanded; both agree with the reference."""
    gen = torch.Generator().manual_seed(3)
    q, o, lse, row_coord, key_k, key_v, key_coord, added = case(gen, 9, 3, 64, 12, 6, 0, 1.0)
    (o_ref, lse_ref, _, _), _ = both(q, o, lse, row_coord, key_k, key_v, key_coord, added, 0, 12)
    calls = []
    kernel = native.update_rows_
    monkeypatch.setattr(native, "update_rows_", lambda *a: calls.append(a[4].shape) or kernel(*a))
    o32, lse32 = o.clone(), lse.clone()
    update_rows_(q, o32, lse32, row_coord, key_k, key_v, key_coord, added, CANCEL)
    assert calls == [key_k.shape]
    torch.testing.assert_close(o32, o_ref, atol=2e-5, rtol=1e-5)
    o64, lse64 = o.double(), lse.double()
    update_rows_(q.double(), o64, lse64, row_coord, key_k.double(), key_v.double(), key_coord, added, CANCEL)
    assert len(calls) == 1
    torch.testing.assert_close(o64.float(), o_ref, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(lse64.float(), lse_ref, atol=2e-5, rtol=1e-5)
