"""HeadWindow: a document longer than the context shows the model its first N tokens, edits clipped."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vqlsp.bench.text_bench import make_prose
from vqlsp.engine.edits import TokenEdit, apply_edits
from vqlsp.text.document import TokenizedDocument
from vqlsp.text.limits import HeadWindow


@st.composite
def edited(draw):
    """(old ids, edits on them, max_tokens)."""
    old = draw(st.lists(st.integers(0, 9), max_size=30))
    cuts = sorted(draw(st.sets(st.integers(0, len(old)), max_size=6)))
    edits = [
        TokenEdit(start, end, tuple(draw(st.lists(st.integers(10, 19), max_size=5))))
        for start, end in zip(cuts[::2], cuts[1::2])
    ]
    return old, edits, draw(st.integers(1, 25))


@settings(max_examples=300, deadline=None)
@given(case=edited())
def test_clipped_edits_turn_the_old_view_into_the_new_one(case):
    old, edits, max_tokens = case
    window = HeadWindow(max_tokens)
    new = apply_edits(old, edits)
    clipped = window.clip(edits, len(old), lambda start, stop: new[start:stop])
    assert apply_edits(window.visible(old), clipped) == window.visible(new)
    assert all(
        e.start < max_tokens or e.start == e.end == len(window.visible(old)) for e in clipped
    )


def test_edits_past_the_window_cost_nothing():
    window = HeadWindow(4)
    old = list(range(10))
    assert window.clip([TokenEdit(6, 7, (99,))], len(old), lambda a, b: []) == []


def test_an_insertion_inside_pushes_one_token_out_at_the_end():
    window = HeadWindow(4)
    old = list(range(10))
    new = apply_edits(old, [TokenEdit(1, 1, (99,))])
    clipped = window.clip([TokenEdit(1, 1, (99,))], len(old), lambda a, b: new[a:b])
    assert clipped == [TokenEdit(1, 1, (99,)), TokenEdit(3, 4, ())]


def test_a_deletion_inside_pulls_the_next_token_into_view():
    window = HeadWindow(4)
    old = list(range(10))
    new = apply_edits(old, [TokenEdit(0, 1)])
    clipped = window.clip([TokenEdit(0, 1)], len(old), lambda a, b: new[a:b])
    assert clipped == [TokenEdit(0, 1), TokenEdit(4, 4, (4,))]


def test_window_must_hold_a_token():
    with pytest.raises(ValueError):
        HeadWindow(0)


@pytest.mark.parametrize("text_tokenizer", ["smollm2"], indirect=True)
def test_a_long_document_edited_everywhere_keeps_its_head_in_step(text_tokenizer):
    rng = random.Random(3)
    doc = TokenizedDocument(make_prose(20_000, rng), text_tokenizer)
    window = HeadWindow(512)
    seen = window.visible(doc.ids)
    for _ in range(60):
        start = rng.choice([rng.randrange(200), rng.randrange(doc.n_chars)])
        end = min(start + rng.randrange(30), doc.n_chars)
        old_length = len(doc)
        edits = doc.apply_change(start, end, rng.choice(["", "x", " and then ", "😋\n"]))
        seen = apply_edits(seen, window.clip(edits, old_length, doc.ids_slice))
        assert seen == doc.ids[:512]
