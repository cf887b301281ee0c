"""TokenizedDocument: after any changes, its tokens are those of its text tokenized from scratch.

The property test replays random changes (inserts, deletes, replacements,
whole-document replaces) on hard text, and after each one checks the ids and
spans against ``TextTokenizer.encode`` of the text, and that the emitted
``TokenEdit``s turn the previous ids into the new ones. It runs once with the
real chunk size and once with two-token chunks, so splices across chunks and
chunk merging are exercised on short texts.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vqlsp.engine.edits import TokenEdit, apply_edits
from vqlsp.text.document import InvalidChange, TokenizedDocument
from vqlsp.text.tokenizer import TextTokenizer

from .conftest import BYTE_LEVEL, OTHER
from .strategies import texts


def replay(doc: TokenizedDocument, tokenizer: TextTokenizer, text: str, data) -> None:
    """Draw and apply a few changes, checking the invariant after each."""
    ids = doc.ids
    for _ in range(data.draw(st.integers(1, 8), label="changes")):
        if data.draw(st.integers(0, 9), label="kind") == 0:
            text = data.draw(texts(30), label="whole new text")
            edits = doc.replace_all(text)
        else:
            start = data.draw(st.integers(0, len(text)), label="start")
            length = data.draw(
                st.one_of(
                    st.integers(0, min(3, len(text) - start)), st.integers(0, len(text) - start)
                ),
                label="length",
            )
            new_text = data.draw(texts(3), label="inserted")
            edits = doc.apply_change(start, start + length, new_text)
            text = text[:start] + new_text + text[start + length :]
        expected = tokenizer.encode(text)
        expected_ids = expected.ids.tolist()
        assert doc.ids == expected_ids
        assert apply_edits(ids, edits) == expected_ids
        ids = expected_ids
    spans = list(zip(expected.starts, expected.ends))
    assert doc.text == text
    assert doc.spans == spans
    assert len(doc) == len(expected.ids)
    start = data.draw(st.integers(0, len(doc)), label="slice start")
    stop = data.draw(st.integers(start, len(doc) + 2), label="slice stop")
    assert doc.ids_slice(start, stop) == ids[start:stop]
    assert doc.spans_slice(start, stop) == spans[start:stop]
    if start < len(doc):
        assert doc.span(start) == spans[start]


@pytest.mark.parametrize("chunk_tokens", [2, 256])
@pytest.mark.parametrize("text_tokenizer", ["smollm2", *BYTE_LEVEL], indirect=True)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_byte_level_tokens_equal_a_fresh_tokenization(text_tokenizer, chunk_tokens, data):
    text = data.draw(texts(40), label="initial text")
    doc = TokenizedDocument(text, text_tokenizer, chunk_tokens=chunk_tokens)
    replay(doc, text_tokenizer, text, data)


@pytest.mark.parametrize("text_tokenizer", OTHER, indirect=True)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_other_fast_tokenizers_stay_exact_too(text_tokenizer, data):
    text = data.draw(texts(30), label="initial text")
    doc = TokenizedDocument(text, text_tokenizer, chunk_tokens=2)
    replay(doc, text_tokenizer, text, data)


@pytest.mark.parametrize("text_tokenizer", ["smollm2"], indirect=True)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_long_documents_with_many_chunks(text_tokenizer, data):
    paragraph = data.draw(texts(40), label="paragraph")
    text = (paragraph + "\n\n") * 30
    doc = TokenizedDocument(text, text_tokenizer, chunk_tokens=16)
    replay(doc, text_tokenizer, text, data)


@pytest.mark.parametrize("text_tokenizer", ["gpt2"], indirect=True)
def test_a_keystroke_changes_only_the_word_it_is_in(text_tokenizer):
    doc = TokenizedDocument("the writer keeps writing", text_tokenizer)
    before = doc.ids
    edits = doc.apply_change(10, 10, "s")  # "the writers keeps writing"
    assert len(edits) == 1
    edit = edits[0]
    assert edit.end - edit.start <= 2 and len(edit.new_ids) <= 3
    assert apply_edits(before, edits) == doc.ids


@pytest.mark.parametrize("text_tokenizer", ["smollm2"], indirect=True)
def test_emoji_split_into_byte_tokens_keeps_overlapping_spans(text_tokenizer):
    doc = TokenizedDocument("Hi 👍🏽 there", text_tokenizer)
    spans = doc.spans
    assert spans[1][0] == 2 and any(s == e - 1 for s, e in spans[1:4])  # several tokens per emoji
    ids = doc.ids
    edits = doc.apply_change(3, 4, "😋")  # swap the first emoji only
    expected = text_tokenizer.encode("Hi 😋🏽 there")
    assert apply_edits(ids, edits) == expected.ids.tolist()
    assert doc.spans == list(zip(expected.starts, expected.ends))


@pytest.mark.parametrize("text_tokenizer", ["smollm2"], indirect=True)
def test_joining_and_splitting_crlf_and_whitespace_runs(text_tokenizer):
    text = "a\r\nb    c\t\td"
    doc = TokenizedDocument(text, text_tokenizer)
    for start, end, new in [(2, 2, "x"), (2, 3, ""), (1, 1, "\n"), (5, 6, ""), (4, 4, "   ")]:
        doc.apply_change(start, end, new)
        text = text[:start] + new + text[end:]
        assert doc.ids == text_tokenizer.encode_ids(text)


@pytest.mark.parametrize("text_tokenizer", ["smollm2"], indirect=True)
def test_no_op_changes_emit_no_edits(text_tokenizer):
    doc = TokenizedDocument("unchanged text", text_tokenizer)
    assert doc.apply_change(3, 3, "") == []
    assert doc.apply_change(2, 5, "cha") == []
    assert doc.replace_all("unchanged text") == []


@pytest.mark.parametrize("text_tokenizer", ["smollm2"], indirect=True)
def test_empty_documents(text_tokenizer):
    doc = TokenizedDocument("", text_tokenizer)
    assert doc.ids == [] and doc.spans == [] and doc.text == ""
    edits = doc.apply_change(0, 0, "hello")
    assert apply_edits([], edits) == doc.ids == text_tokenizer.encode_ids("hello")
    hello = len(doc)
    assert doc.apply_change(0, 5, "") == [TokenEdit(0, hello, ())]
    assert doc.ids == [] and doc.text == ""


@pytest.mark.parametrize("text_tokenizer", ["smollm2"], indirect=True)
@pytest.mark.parametrize("start, end", [(-1, 0), (0, 99), (3, 2)])
def test_changes_that_do_not_fit_are_refused(text_tokenizer, start, end):
    doc = TokenizedDocument("short", text_tokenizer)
    with pytest.raises(InvalidChange):
        doc.apply_change(start, end, "x")
    assert doc.text == "short"


@pytest.mark.parametrize("text_tokenizer", ["smollm2"], indirect=True)
def test_lone_surrogates_are_tokenized_as_replacement_characters(text_tokenizer):
    doc = TokenizedDocument("a\ud800b", text_tokenizer)
    assert doc.ids == text_tokenizer.encode_ids("a\ufffdb")
    doc.apply_change(1, 1, "\udfff")
    assert doc.ids == text_tokenizer.encode_ids("a\ufffd\ufffdb")
    assert doc.text == "a\udfff\ud800b"
