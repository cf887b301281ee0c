"""``compose_edits``: consecutive edit batches as one list of edits on the original tokens."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vqlsp.engine.edits import TokenEdit, apply_edits, compose_edits


@st.composite
def batch_sequences(draw):
    n = draw(st.integers(0, 30))
    seq = list(range(100, 100 + n))
    batches = []
    for _ in range(draw(st.integers(1, 5))):
        k = draw(st.integers(0, 3))
        cuts = sorted(draw(st.lists(st.integers(0, len(seq)), min_size=2 * k, max_size=2 * k)))
        batch = [
            TokenEdit(cuts[2 * i], cuts[2 * i + 1], tuple(draw(st.lists(st.integers(0, 5), max_size=3))))
            for i in range(k)
        ]
        seq = apply_edits(seq, batch)
        batches.append(batch)
    return n, batches


@settings(max_examples=400, deadline=None)
@given(batch_sequences())
def test_composed_edits_do_what_the_batches_do(case):
    n, batches = case
    want = list(range(100, 100 + n))
    for batch in batches:
        want = apply_edits(want, batch)
    composed = compose_edits(n, batches)
    assert apply_edits(list(range(100, 100 + n)), composed) == want
    # Sorted, disjoint, and never touching more than the batches did.
    assert all(a.end <= b.start for a, b in zip(composed, composed[1:]))
    assert sum(e.end - e.start for e in composed) <= sum(e.end - e.start for b in batches for e in b)


def test_distant_edits_stay_apart():
    """Two cursors far apart (two content changes) are two small edits, not one replacement
    of everything between them."""
    batches = [[TokenEdit(2, 3, (7,))], [TokenEdit(90, 91, (8, 8))]]
    assert compose_edits(100, batches) == [TokenEdit(2, 3, (7,)), TokenEdit(90, 91, (8, 8))]
    # Typing a word, then fixing its first letter: one edit.
    batches = [[TokenEdit(5, 5, (1,))], [TokenEdit(6, 6, (2,))], [TokenEdit(5, 6, (3,))]]
    assert compose_edits(10, batches) == [TokenEdit(5, 5, (3, 2))]
