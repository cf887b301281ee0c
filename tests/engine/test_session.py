"""Equivalence: after any edit sequence the session equals a fresh dense forward.

Same tokens, same position ids (whatever the policy chose), VQ on: final states
and document/span probabilities within 1e-4, and every layer's codes identical
except where the dense forward itself sits on a tie (margin below ``TIE``).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vqlsp.engine.edits import TokenEdit, apply_edits
from vqlsp.engine.policy import RecomputePolicy
from vqlsp.engine.session import IncrementalSession

from .models import VOCAB, dense, tiny_model, tiny_q4_model

TOL = 1e-4
TIE = 1e-4


def check_against_dense(session: IncrementalSession, model) -> bool:
    """Assert the session equals the dense forward. False when a dense tie let a code differ
    (legitimately); the caller then stops comparing that sequence."""
    ids = session.token_ids
    n = len(ids)
    spans = [(0, n)] if n < 2 else [(0, n // 2), (n // 2, n)]
    out = session.outputs(spans=spans if n else None, hidden=True)
    if not n:
        prior = torch.softmax(model.document_head.linear.bias.float(), -1)
        torch.testing.assert_close(out.probabilities, prior, atol=TOL, rtol=0)
        return True
    ref = dense(model, ids, session.position_ids)
    for layer in range(model.cfg.depth):
        differ = session.codes(layer).long() != ref.codes[layer][0]
        if bool(differ.any()):
            margins = ref.margins[layer][0][differ]
            assert bool((margins < TIE).all()), f"layer {layer}: codes differ at margins {margins.tolist()}"
            return False
        if model.cfg.has_acm(layer):  # each token ran the learners its dense gate picks
            differ = session.learners(layer) != ref.learners[layer][0]
            if bool(differ.any()):
                slack = ref.gate_slack[layer][differ]
                assert bool((slack < TIE).all()), f"layer {layer}: learners differ at gate slack {slack.tolist()}"
                return False
    torch.testing.assert_close(out.hidden, ref.hidden[0], atol=TOL, rtol=0)
    probs = torch.softmax(model.document_head(ref.hidden).float()[0], -1)
    torch.testing.assert_close(out.probabilities, probs, atol=TOL, rtol=0)
    span_probs = torch.softmax(model.span_head(ref.hidden[0], spans).float(), -1)
    torch.testing.assert_close(out.spans, span_probs, atol=TOL, rtol=0)
    return True


@st.composite
def edit_call(draw, n: int) -> list[TokenEdit]:
    """One ``apply`` call: 1-3 non-overlapping edits (insert / delete / replace anywhere), or a
    rewrite of the whole document (possibly to empty)."""
    token = st.integers(0, VOCAB - 1)
    if draw(st.integers(0, 9)) == 0:
        return [TokenEdit(0, n, tuple(draw(st.lists(token, max_size=12))))]
    count = draw(st.integers(1, 3))
    cuts = sorted(draw(st.lists(st.integers(0, n), min_size=2 * count, max_size=2 * count)))
    edits, last = [], None
    for i in range(count):
        start, stop = cuts[2 * i], cuts[2 * i + 1]
        end = min(stop, start + draw(st.integers(0, 3)))
        new = tuple(draw(st.lists(token, max_size=3)))
        if (start, end) == last or (start == end and not new):
            continue
        edits.append(TokenEdit(start, end, new))
        last = (start, end)
    return edits


def run_sequence(
    data, variant: str, policy: str, pooling: str = "mean", max_drift: int = 8, model=None, buckets: bool = False,
    **options,
) -> None:
    """``options``: more ``IncrementalSession`` arguments (the static loop's)."""
    model = model or tiny_model(variant, pooling=pooling)
    ids = data.draw(st.lists(st.integers(0, VOCAB - 1), max_size=40), label="initial")
    # 0: always update accumulators; 1 (the default) and 3: switch to full attention once
    # many keys change (3: early)
    ratio = data.draw(st.sampled_from([0.0, 1.0, 3.0]), label="update_cost_ratio")
    session = IncrementalSession(model, ids, policy, max_drift=max_drift, buckets=buckets,
                                 recompute=RecomputePolicy(update_cost_ratio=ratio), **options)
    if not check_against_dense(session, model):
        return
    for _ in range(data.draw(st.integers(1, 6), label="calls")):
        if policy == "stable" and data.draw(st.integers(0, 4), label="reindex") == 0:
            session.reindex()  # what the server does when the writer pauses
            assert session.position_ids.tolist() == list(range(len(ids))) and session.drift == 0
        else:
            edits = data.draw(edit_call(len(ids)), label="edits")
            session.apply(edits)
            ids = apply_edits(ids, edits)
        assert session.token_ids == ids
        if not check_against_dense(session, model):
            return


SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("policy", ["stable", "exact"])
@pytest.mark.parametrize("variant", ["llama", "opt"])
@SETTINGS
@given(data=st.data())
def test_random_edits_equal_dense(variant, policy, data):
    run_sequence(data, variant, policy)


@pytest.mark.parametrize("policy", ["stable", "exact"])
@pytest.mark.parametrize("variant", ["llama-acm", "opt-acm"])
@SETTINGS
@given(data=st.data())
def test_random_edits_equal_dense_with_acm_mlps(variant, policy, data):
    """ACM MLPs: a changed row runs only its gated learners; the gate decides from the row's
    input alone, so reused rows keep their decision and the session still equals dense."""
    run_sequence(data, variant, policy)


@pytest.mark.parametrize("variant", ["opt-post-ln", "llama-mqa-3layers"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_other_block_forms_equal_dense(variant, data):
    run_sequence(data, variant, "stable", pooling="last")


@SETTINGS
@given(data=st.data())
def test_random_edits_equal_dense_across_compactions(data):
    """Slots drift out of document order as tokens come and go; compacting once the
    waste passes n/8 (no floor) gathers the buffers back into order every few edits."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("vqlsp.engine.state.MIN_WASTE", 0)
        run_sequence(data, "llama", "stable")


@pytest.mark.parametrize("policy", ["stable", "exact"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_edits_equal_dense_with_the_pytorch_update(policy, data):
    """The accumulator update's PyTorch path (other devices, or no C compiler) in the whole
    engine; the tests above run the fused C kernel where one could be built."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("vqlsp.native.available", lambda: False)
        run_sequence(data, "llama", policy)


@pytest.mark.parametrize("variant", ["llama", "opt"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_edits_equal_dense_with_four_bit_weights(variant, data):
    """Weights held in 4 bits with unmerged deltas (``model/q4.py``): the engine and the dense
    forward call the same modules, so the invariant holds as for float32; a low kernel row
    limit sends the dense pass through the dequantized path and the engine's rows through
    the kernel. The model holds q, k, v (and SwiGLU's gate, up) fused in one layer each
    (``q4.fuse_projections``); drawn off, the parts compute alone."""
    model = tiny_q4_model(variant)
    assert all(block.qkv_fused is not None for block in model.blocks)
    assert variant != "llama" or all(block.mlp.gate_up is not None for block in model.blocks)
    fused = [(block.qkv_fused, block.mlp.gate_up) for block in model.blocks]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("vqlsp.model.q4.KERNEL_MAX_ROWS", data.draw(st.sampled_from([4, 64]), label="kernel rows"))
        use_fused = data.draw(st.booleans(), label="fused")
        try:  # (MonkeyPatch would delete a submodule on undo: it restores only what __dict__ held)
            for block, (qkv, gate_up) in zip(model.blocks, fused):
                block.qkv_fused, block.mlp.gate_up = (qkv, gate_up) if use_fused else (None, None)
            run_sequence(data, variant, "stable", model=model)
        finally:
            for block, (qkv, gate_up) in zip(model.blocks, fused):
                block.qkv_fused, block.mlp.gate_up = qkv, gate_up


@pytest.mark.parametrize("variant", ["llama", "opt"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_edits_equal_dense_with_bucketed_row_sets(variant, data):
    """Row sets padded to fixed sizes (``buckets.py``, the static shapes CUDA graphs need)
    give the same results as the unpadded ones, on CPU as the GPU path would."""
    run_sequence(data, variant, "stable", buckets=True)


def test_bucketed_and_unbucketed_sessions_store_the_same_rows():
    model = tiny_model("llama")
    gen = torch.Generator().manual_seed(5)
    ids = torch.randint(0, VOCAB, (120,), generator=gen).tolist()
    plain, padded = IncrementalSession(model, ids, buckets=False), IncrementalSession(model, ids, buckets=True)
    for step in range(8):
        at = int(torch.randint(0, len(ids), (1,), generator=gen))
        edits = [TokenEdit(at, min(at + 1, len(ids)), (step, step + 1))]
        a, b = plain.apply(edits), padded.apply(edits)
        ids = apply_edits(ids, edits)
        assert a.rows_changed == b.rows_changed and a.code_flips == b.code_flips
        for layer in range(model.cfg.depth):
            assert torch.equal(plain.codes(layer), padded.codes(layer))
            torch.testing.assert_close(plain.attention_outputs(layer), padded.attention_outputs(layer),
                                       atol=1e-5, rtol=0)
        torch.testing.assert_close(plain.outputs(hidden=True).hidden, padded.outputs(hidden=True).hidden,
                                   atol=1e-5, rtol=0)


def test_reuse_and_flip_paths_are_both_taken():
    """On a longer document most rows keep their codes (margin check), some flip."""
    model = tiny_model("llama")
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(0, VOCAB, (300,), generator=gen).tolist()
    session = IncrementalSession(model, ids, "stable")
    skipped = flipped = reused = 0
    for step in range(20):
        at = int(torch.randint(0, len(ids), (1,), generator=gen))
        edit = TokenEdit(at, at + 1, (step,)) if step % 2 else TokenEdit(at, at, (step,))
        stats = session.apply([edit])
        ids = apply_edits(ids, [edit])
        after = len(ids) - at
        skipped += sum(after - s for s in stats.searched)
        flipped += sum(stats.code_flips)
        reused += sum(len(ids) - r for r in stats.rows_changed)
        assert check_against_dense(session, model)
    assert skipped > 0 and flipped > 0 and reused > 0


def test_positions_follow_the_policy():
    model = tiny_model("opt")
    stable = IncrementalSession(model, list(range(10)), "stable", max_drift=100)
    stable.apply([TokenEdit(3, 3, (7, 8)), TokenEdit(6, 7)])
    assert stable.position_ids.tolist() == [0, 1, 2, 2, 2, 3, 4, 5, 7, 8, 9]
    exact = IncrementalSession(model, list(range(10)), "exact")
    exact.apply([TokenEdit(3, 3, (7, 8))])
    assert exact.position_ids.tolist() == list(range(12))


def test_stable_policy_reindexes_past_the_drift_bound():
    model = tiny_model("llama")
    session = IncrementalSession(model, list(range(20)), "stable", max_drift=3)
    assert not session.apply([TokenEdit(0, 3)]).reindexed
    stats = session.apply([TokenEdit(0, 1)])
    assert stats.reindexed and session.position_ids.tolist() == list(range(16))
    assert check_against_dense(session, model)


def test_reindex_on_demand_gives_exact_ids():
    model = tiny_model("llama")
    session = IncrementalSession(model, list(range(20)), "stable", max_drift=100)
    session.apply([TokenEdit(4, 4, (7, 8, 9)), TokenEdit(12, 15)])
    assert session.drift == 3  # three new tokens share id 3; the next ones sit 3 past their ids until the deletion
    stats = session.reindex()
    assert stats.reindexed and session.drift == 0 and session.position_ids.tolist() == list(range(20))
    assert sum(stats.rows_changed) > 0  # rows after the first moved id were updated
    assert check_against_dense(session, model)
    again = session.reindex()  # exact already: nothing moves, nothing is recomputed
    assert sum(again.rows_changed) == 0


def test_rejects_bad_edits():
    session = IncrementalSession(tiny_model("llama"), [1, 2, 3])
    with pytest.raises(ValueError):
        session.apply([TokenEdit(2, 5)])
    with pytest.raises(ValueError):
        session.apply([TokenEdit(0, 2), TokenEdit(1, 3)])
    with pytest.raises(ValueError):
        session.apply([TokenEdit(1, 1, (4,)), TokenEdit(1, 1, (5,))])
    assert session.token_ids == [1, 2, 3]
