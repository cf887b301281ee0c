"""TokenEdit, the unit of change between the text layer and the engine."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vqlsp.engine.edits import TokenEdit, apply_edits


def test_insert_delete_replace():
    ids = [1, 2, 3, 4]
    assert apply_edits(ids, [TokenEdit(2, 2, (9,))]) == [1, 2, 9, 3, 4]
    assert apply_edits(ids, [TokenEdit(1, 3)]) == [1, 4]
    assert apply_edits(ids, [TokenEdit(0, 4, (7, 7))]) == [7, 7]
    assert TokenEdit(1, 3, (5,)).delta == -1


def test_several_edits_refer_to_the_old_sequence():
    ids = [0, 1, 2, 3, 4, 5]
    edits = [TokenEdit(0, 1, (10, 11)), TokenEdit(3, 5)]
    assert apply_edits(ids, edits) == [10, 11, 1, 2, 5]


@pytest.mark.parametrize("edits", [[TokenEdit(0, 3), TokenEdit(2, 4)], [TokenEdit(5, 7)]])
def test_overlapping_or_out_of_range_edits_are_refused(edits):
    with pytest.raises(ValueError):
        apply_edits([0, 1, 2, 3, 4], edits)


def test_bad_range():
    with pytest.raises(ValueError):
        TokenEdit(3, 2)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 9), max_size=12), st.data())
def test_one_edit_matches_slice_assignment(ids, data):
    start = data.draw(st.integers(0, len(ids)))
    end = data.draw(st.integers(start, len(ids)))
    new = data.draw(st.lists(st.integers(0, 9), max_size=4))
    expect = list(ids)
    expect[start:end] = new
    assert apply_edits(ids, [TokenEdit(start, end, new)]) == expect
