"""The static layer loop (``engine/static_loop.py``): no host sync, static shapes, and the
invariant (incremental == a fresh dense forward), including edits redone after an overflow.

The guard (``engine/sync_guard.py``) stands in on the CPU for CUDA's sync debug mode; it
is first shown to catch every syncing operation it names, then held around the loop.
"""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vqlsp.engine import static_loop
from vqlsp.engine.buckets import bucket_size
from vqlsp.engine.edits import TokenEdit, apply_edits
from vqlsp.engine.graphs import GraphedLayers
from vqlsp.engine.policy import RecomputePolicy
from vqlsp.engine.session import IncrementalSession
from vqlsp.engine.static_rows import RowBuckets, take
from vqlsp.engine.sync_guard import HostSync, ShapeLog, no_host_sync, product_shapes

from .models import VOCAB, tiny_model, tiny_q4_model
from .test_session import check_against_dense, run_sequence

SMALL = RowBuckets(minimum=8, headroom=1.0, growth=2)  # first buckets of 8 rows: later layers overflow them
RUN_LAYERS = static_loop.run_layers


def guarded_run(log: ShapeLog | None = None, keys: list | None = None):
    """``run_layers`` with the guard held around the whole layer loop."""
    run = RUN_LAYERS

    def run_guarded(model, state, policy, edit):
        if keys is not None:
            keys.append(edit.shape_key(state))
        with no_host_sync(log):
            return run(model, state, policy, edit)

    return run_guarded


def edits_at(gen: torch.Generator, n: int, step: int) -> list[TokenEdit]:
    at = int(torch.randint(0, n, (1,), generator=gen))
    return [TokenEdit(at, min(at + 1, n), (step % VOCAB, (7 * step) % VOCAB))]


# --- the guard -------------------------------------------------------------------------

x = torch.arange(6.0)
SYNCING = {
    "item": lambda: x.sum().item(),
    "int": lambda: int(x[2]),
    "bool": lambda: bool(x[1] > 0),
    "if": lambda: 1 if x.sum() else 0,
    "tolist": lambda: x.tolist(),
    "numpy": lambda: x.numpy(),
    "nonzero": lambda: torch.nonzero(x > 2),
    "unique": lambda: torch.unique(x),
    "unique_consecutive": lambda: torch.unique_consecutive(x),
    "masked_select": lambda: torch.masked_select(x, x > 2),
    "boolean index": lambda: x[x > 2],
    "boolean index_put": lambda: x.clone().__setitem__(x > 2, 0.0),
    "repeat_interleave by a tensor": lambda: torch.repeat_interleave(x, torch.ones(6, dtype=torch.long)),
}


@pytest.mark.parametrize("name", sorted(SYNCING))
def test_the_guard_catches_each_syncing_operation(name):
    SYNCING[name]()  # fine outside
    with pytest.raises(HostSync), no_host_sync():
        SYNCING[name]()


def test_the_guard_lets_static_operations_through():
    with no_host_sync():
        index, count = take(x > 2, 4, fill=99)  # nonzero_static
        y = x[index.clamp_max(5)] + x[torch.tensor([0, 1, 2, 3])]
        y.index_put_((torch.tensor([0]),), torch.tensor([1.0]))
    assert index.tolist() == [3, 4, 5, 99] and int(count) == 3


# --- the loop --------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["llama", "opt", "opt-post-ln", "llama-mqa-3layers", "llama-q4"])
def test_an_edit_sequence_runs_under_the_guard_and_matches_the_dynamic_loop(variant):
    """Every layer loop under the guard; the same rows change, flip, are searched and
    attended as in the dynamic loop, and some edits are redone after an overflow."""
    model = tiny_q4_model("llama") if variant == "llama-q4" else tiny_model(variant)
    gen = torch.Generator().manual_seed(5)
    ids = torch.randint(0, VOCAB, (150,), generator=gen).tolist()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(static_loop, "run_layers", guarded_run())
        static = IncrementalSession(model, ids, static=True, row_buckets=SMALL)
        dynamic = IncrementalSession(model, ids, static=False)
        redos = 0
        for step in range(12):
            edits = edits_at(gen, len(ids), step)
            a, b = dynamic.apply(edits), static.apply(edits)
            ids = apply_edits(ids, edits)
            redos += b.redos
            assert (a.rows_changed, a.code_flips, a.searched, a.recomputed) == (
                b.rows_changed, b.code_flips, b.searched, b.recomputed)
            assert torch.equal(a.row_work, b.row_work)
            assert a.ops["qkv"] == b.ops["qkv"] and a.ops["attention"] == b.ops["attention"]
            assert check_against_dense(static, model)
    assert redos > 0 and b.bucket in {bucket_size(r) for r in range(1, 200)}


@pytest.mark.parametrize("policy", ["stable", "exact"])
@pytest.mark.parametrize("variant", ["llama", "opt"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_edits_equal_dense_through_the_static_loop(variant, policy, data):
    """The invariant through the static loop, under the guard, with buckets small enough
    that edits overflow and are redone (``row_buckets`` drawn: small, or the default)."""
    buckets = data.draw(st.sampled_from([SMALL, RowBuckets()]), label="row buckets")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(static_loop, "run_layers", guarded_run())
        run_sequence(data, variant, policy, static=True, row_buckets=buckets)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_edits_equal_dense_through_the_static_loop_with_the_pytorch_update(data):
    """The accumulator update's PyTorch path (what runs on CUDA) inside the static loop."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("vqlsp.native.available", lambda: False)
        patch.setattr(static_loop, "run_layers", guarded_run())
        run_sequence(data, "llama", "stable", static=True, row_buckets=SMALL)


def test_shapes_are_a_function_of_the_bucket_key():
    """Across many edits, the shapes entering every matmul and attention call of an edit are
    fixed by its key (bucket, undo, tail size, padded deleted keys, capacity), and every size
    in the key but the capacity is a bucket size; the dynamic loop's shapes follow the rows."""
    model = tiny_model("llama")
    gen = torch.Generator().manual_seed(9)
    ids = torch.randint(0, VOCAB, (200,), generator=gen).tolist()
    keys: list[tuple] = []
    per_key: dict[tuple, set] = {}
    session = IncrementalSession(model, ids, static=True)
    for step in range(40):
        edits = edits_at(gen, len(ids), step)
        log = ShapeLog()
        session._loop = guarded_run(log, keys)
        before = len(keys)
        session.apply(edits)
        ids = apply_edits(ids, edits)
        assert len(keys) == before + 1 + session.last_stats.redos
        if session.last_stats.redos == 0:
            per_key.setdefault(keys[-1], set()).add(frozenset(log.signatures))
    sizes = {bucket_size(r) for r in range(0, 1000)}
    for bucket, search_bucket, _undo, tail, keys, gone, capacity in per_key:
        assert {bucket, search_bucket, tail, gone} <= sizes and (keys in sizes or keys == capacity)
    assert all(len(shape_sets) == 1 for shape_sets in per_key.values()), "one key, several shape sets"
    static_shapes = set().union(*(next(iter(s)) for s in per_key.values()))
    assert len(per_key) < 20

    dynamic = IncrementalSession(model, ids, static=False)
    log = ShapeLog()
    gen = torch.Generator().manual_seed(9)
    for step in range(40):
        edits = edits_at(gen, len(ids), step)
        with product_shapes(log):
            dynamic.apply(edits)
        ids = apply_edits(ids, edits)
    assert len(log.signatures) > len(static_shapes)


def test_an_overflowed_run_is_put_back_exactly():
    """A speculative run that overflows its bucket, then its undo log: every buffer the loop
    writes is as before the loop (layer 0's input rows were embedded before it, and stay)."""
    model = tiny_model("llama")
    ids = torch.randint(0, VOCAB, (90,), generator=torch.Generator().manual_seed(2)).tolist()
    session = IncrementalSession(model, ids, static=True, row_buckets=SMALL)
    session._peak = 0  # forget the opening pass's rows: the first bucket holds 8
    before = copy.deepcopy(session.state)
    first: dict = {}

    def first_run_only(model, state, policy, edit):
        first["result"] = static_loop.run_layers(model, state, policy, edit)
        raise _Stop

    session._loop = first_run_only
    with pytest.raises(_Stop):
        session.apply([TokenEdit(3, 4, tuple(range(1, 11)))])  # many rows change: 8 overflow
    result, st, sink = first["result"], session.state, session.state.sink
    assert bool(result.counts[:, static_loop.OVERFLOW].any()) and result.undo is not None
    assert st.capacity == before.capacity and not torch.equal(st.o, before.o)
    result.undo.restore(st)
    for name in ("x", "q", "k", "v", "o", "lse", "slack", "codes"):
        axis = 1 if name in ("x", "codes") else 2
        after, expect = (getattr(s, name).narrow(axis, 0, sink) for s in (st, before))
        if name == "x":
            after, expect = after[1:], expect[1:]
        assert torch.equal(after, expect), f"{name} not restored"


class _Stop(Exception):
    pass


def test_graph_runner_replays_one_capture_per_key_on_copied_inputs():
    """``GraphedLayers``' bookkeeping on the CPU, with a capture that re-runs the function on
    the graph's own input tensors (what a CUDA replay does): the first edit of a key runs
    eagerly, later ones only through the copied inputs, and the session still equals dense."""
    model = tiny_model("llama")
    gen = torch.Generator().manual_seed(4)
    ids = torch.randint(0, VOCAB, (100,), generator=gen).tolist()
    session = IncrementalSession(model, ids, static=True)
    runner = GraphedLayers(capture=lambda fn: fn)
    session._loop = runner
    replays = 0
    for step in range(15):
        edits = [TokenEdit(60, 61, (step,))]  # same place: same tail, same key
        known = len(runner.graphs)
        session.apply(edits)
        replays += len(runner.graphs) == known
        ids = apply_edits(ids, edits)
        assert check_against_dense(session, model)
    assert replays >= 10 and runner.captures == len(runner.graphs) <= 5


def test_static_loop_options():
    with pytest.raises(ValueError, match="ACM"):
        IncrementalSession(tiny_model("llama-acm"), [1, 2, 3], static=True)
    assert not IncrementalSession(tiny_model("llama"), [1, 2, 3]).static  # CPU default: the dynamic loop
    with pytest.raises(ValueError, match="CUDA"):
        IncrementalSession(tiny_model("llama"), [1, 2, 3], static=True, graphs=True)
    with pytest.raises(ValueError):
        RowBuckets(growth=1)


def test_row_buckets_grow_up_to_the_tail():
    b = RowBuckets()
    assert b.first(3, 1000) == 64 and b.first(3, 1000, last_peak=40) == 128
    assert b.first(50, 20) == 32  # never past the tail's bucket
    assert b.grow(8, 1000) == 32 and b.grow(512, 600) == 640
    assert b.grow(8, 1000, needed=100) == 256  # twice what the overflowing layer counted


def test_attend_all_is_a_device_op_on_tensors():
    policy = RecomputePolicy(update_cost_ratio=1.0)
    with no_host_sync():
        yes = policy.attend_all(torch.tensor(150), torch.tensor(100), torch.tensor(200))
        no = policy.attend_all(torch.tensor(10_000), torch.tensor(200), torch.tensor(200))
    assert bool(yes) and not bool(no)
