"""The attention kernels against a plain softmax, on keys held in slot order with free slots.

Both paths of ``attend_rows`` (PyTorch's fused CPU flash kernel, and the explicit
masked softmax the engine uses on other devices) and both paths of the in-place
accumulator update ``update_rows_`` (PyTorch ops, and the fused C kernel built on
this machine) must give what a from-scratch softmax over the keys each row may
see gives.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys

import pytest
import torch

from vqlsp import native
from vqlsp.engine.attention import _attend_rows_explicit, _attend_rows_flash, update_rows_

H, HKV, DH = 4, 2, 8


def reference(q, row_rank, k, v, key_rank):
    """o (H, R, Dh), lse (H, R) by a plain softmax over the keys each row may attend."""
    g = q.shape[0] // k.shape[0]
    k, v = k.repeat_interleave(g, 0), v.repeat_interleave(g, 0)
    scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])  # (H, R, S)
    hidden = (key_rank[None, :] > row_rank[:, None]) | (key_rank < 0)[None, :]
    scores = scores.masked_fill(hidden[None], float("-inf"))
    return torch.softmax(scores, -1) @ v, torch.logsumexp(scores, -1)


def slots(n: int, free: int, gen: torch.Generator):
    """Ranks of n tokens scattered over n + free slots (-1: free)."""
    rank = torch.full((n + free,), -1, dtype=torch.long)
    rank[torch.randperm(n + free, generator=gen)[:n]] = torch.arange(n)
    return rank


@pytest.mark.parametrize("kernel", [_attend_rows_flash, _attend_rows_explicit])
@pytest.mark.parametrize("chunk_rows", [None, 3])
def test_attend_rows_matches_a_plain_softmax(kernel, chunk_rows, monkeypatch):
    if chunk_rows:  # rows in several chunks (grouped-query heads stacked within each)
        monkeypatch.setattr("vqlsp.engine.attention.CHUNK_ELEMENTS", chunk_rows * H * 47)
    gen = torch.Generator().manual_seed(0)
    key_rank = slots(40, 7, gen)
    k, v = torch.randn(HKV, 47, DH, generator=gen), torch.randn(HKV, 47, DH, generator=gen)
    row_rank = torch.tensor([0, 5, 39, 17])
    q = torch.randn(H, 4, DH, generator=gen)
    o, lse = kernel(q, row_rank, k, v, key_rank)
    o_ref, lse_ref = reference(q, row_rank, k, v, key_rank)
    torch.testing.assert_close(o, o_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(lse, lse_ref, atol=1e-5, rtol=0)


@pytest.fixture(params=["torch", "native"])
def update_path(request, monkeypatch):
    """``update_rows_`` (grouped-query keys and all) on its PyTorch path or on the C kernel."""
    if request.param == "torch":
        monkeypatch.setattr(native, "available", lambda: False)
    elif not native.available():
        assert shutil.which("cc") is None, "a C compiler is here but the native kernel did not build"
        pytest.skip("no C compiler: the engine uses the PyTorch path")
    return request.param


def test_update_rows_equals_attending_afresh(update_path):
    """Keys leave and arrive; updated rows equal a fresh softmax over the new keys, rows that
    see no changed key stay bit for bit, and the returned distances are the true moves."""
    gen = torch.Generator().manual_seed(1)
    n = 30
    k, v = torch.randn(HKV, n, DH, generator=gen), torch.randn(HKV, n, DH, generator=gen)
    rows = torch.arange(n)
    q = torch.randn(H, n, DH, generator=gen)
    o, lse = reference(q, rows, k, v, rows)
    # key 10 leaves (deleted: coordinate 2*10 - 1 in the new numbering), key 20 changes
    k2, v2 = k.clone(), v.clone()
    k2[:, 20], v2[:, 20] = torch.randn(HKV, DH, generator=gen), torch.randn(HKV, DH, generator=gen)
    keys = torch.stack([k[:, 10], k[:, 20], k2[:, 20]], 1)
    values = torch.stack([v[:, 10], v[:, 20], v2[:, 20]], 1)
    coord = torch.tensor([2 * 10 + 1, 2 * 20, 2 * 20])  # old numbering for the leaver: rows keep theirs
    added = torch.tensor([False, False, True])
    new_o, new_lse = o.clone(), lse.clone()
    moved, cancelled = update_rows_(q, new_o, new_lse, 2 * rows, keys, values, coord, added, 0.25)
    keep = torch.ones(n, dtype=torch.bool)
    keep[10] = False
    rank = torch.where(keep, rows, -1)
    o_ref, lse_ref = reference(q, rows, torch.where(keep[None, :, None], k2, 0), v2, rank)
    # rows after the leaver see a change; row 20 itself is fresh (its q changes too, the
    # engine attends it afresh), and cancelled rows are recomputed
    ok = (rows > 10) & (rows != 20) & ~cancelled.any(0)
    assert int(ok.sum()) > 15
    torch.testing.assert_close(new_o[:, ok], o_ref[:, ok], atol=1e-5, rtol=0)
    torch.testing.assert_close(new_lse[:, ok], lse_ref[:, ok], atol=1e-5, rtol=0)
    assert torch.equal(new_o[:, :11], o[:, :11]) and torch.equal(new_lse[:, :11], lse[:, :11])
    torch.testing.assert_close(moved, torch.linalg.vector_norm(new_o - o, dim=-1), atol=1e-6, rtol=0)


def test_without_a_compiler_the_engine_keeps_the_pytorch_path(tmp_path):
    """A failed build is logged once and leaves ``available()`` False (no exception)."""
    code = "from vqlsp import native; print(native.available())"
    env = {"PATH": "/usr/bin:/bin", "CC": "/no/such/cc", "VQLSP_CACHE": str(tmp_path), "HOME": str(tmp_path),
           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    assert "using the PyTorch path" in done.stderr
    assert not list(tmp_path.glob("native/*.so"))
