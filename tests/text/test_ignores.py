"""Ignore comments per markup language: found where written, inserted where they work, and the
spans they silence (``vqlsp.text.ignores``); the markup layer reads them as markup, so no span
sits on them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vqlsp.text.ignores as ignores_module
from vqlsp.text.ignores import (
    NONE,
    ChunkIgnores,
    find_ignores,
    insert_label_ignore,
    insert_sentence_ignore,
    syntax,
)
from vqlsp.text.positions import LineIndex
from vqlsp.text.segments import segment

TEXT = "Title line\n\nThe committee met. It approved the budget!\nMembers asked.\n\nA second paragraph.\n"
LANGUAGES = ["plaintext", "markdown", "latex", "git-commit", "restructuredtext"]


def sentences(text: str, language: str) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in segment(text, "sentence", language)]


def apply(text: str, edit: tuple[int, int, str]) -> str:
    a, b, new = edit
    return text[:a] + new + text[b:]


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_sentence_comment_silences_the_sentence_it_follows(language):
    start = TEXT.index("The committee")
    text = apply(TEXT, insert_sentence_ignore(TEXT, start, TEXT.index("met.") + 4, language))
    ignores = find_ignores(text, language)
    assert len(ignores.sentences) == 1 and not ignores.labels
    spans = sentences(text, language)
    silenced = {text[a:b] for a, b in ignores.silenced(text, spans)}
    if language == "restructuredtext":  # a comment block after the paragraph: all of it
        assert silenced == {"The committee met.", "It approved the budget!", "Members asked."}
    else:
        assert silenced == {"The committee met."}
    assert not any("vqlsp-ignore" in text[a:b] for a, b in spans)  # markup: no span covers it
    # The text around it reads as before: the same sentences.
    assert [text[a:b] for a, b in spans] == [TEXT[a:b] for a, b in sentences(TEXT, language)]


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_label_comment_goes_at_the_end_and_names_labels(language):
    text = apply(TEXT, insert_label_ignore(TEXT, "negative", language))
    text = apply(text, insert_label_ignore(text, "sentiment/positive", language))
    assert text.startswith(TEXT)
    ignores = find_ignores(text, language)
    assert ignores.labels == {"negative", "sentiment/positive"} and not ignores.sentences
    assert [text[a:b] for a, b in sentences(text, language)] == [TEXT[a:b] for a, b in sentences(TEXT, language)]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("unit", ["sentence", "paragraph"])
@pytest.mark.parametrize("which", ["The committee met.", "It approved the budget!", "Members asked.", "A second paragraph."])
def test_no_span_covers_an_inserted_comment(language, unit, which):
    # Plain text once read "<!-- vqlsp-ignore -->" as the start of the next sentence.
    # as the code action does: after the span (of the unit) that holds `which`
    start, end = next((s.start, s.end) for s in segment(TEXT, unit, language) if s.end > TEXT.index(which))
    text = apply(TEXT, insert_sentence_ignore(TEXT, start, end, language))
    text = apply(text, insert_label_ignore(text, "negative", language))
    comments = [m.span() for m in syntax(language).pattern.finditer(text)]
    assert len(comments) == 2
    spans = [(s.start, s.end) for s in segment(text, unit, language)]
    assert not [(text[a:b], text[c:d]) for a, b in spans for c, d in comments if a < d and c < b]


@pytest.mark.parametrize("language", ["plaintext", "markdown", "latex"])
def test_an_inline_comment_ends_the_sentence_before_it(language):
    # Written by hand where no sentence ends: the comment still is in no span, and it
    # silences the words before it.
    comment = syntax(language).sentence.strip()
    text = f"The committee met {comment}\nand it approved the budget.\n"
    spans = sentences(text, language)
    assert [text[a:b] for a, b in spans] == ["The committee met", "and it approved the budget."]
    assert {text[a:b] for a, b in find_ignores(text, language).silenced(text, spans)} == {"The committee met"}


def test_comments_in_another_syntax_or_escaped_are_not_read():
    assert find_ignores("No comments here.", "markdown") is NONE
    assert find_ignores("100\\% vqlsp-ignore", "latex").sentences == ()
    assert find_ignores("<!-- vqlsp-ignore -->", "latex").sentences == ()
    assert find_ignores("text # vqlsp-ignore", "git-commit").sentences == ()  # not a comment line
    assert find_ignores("<!-- vqlsp-ignore-label: a, b c -->", "markdown").labels == {"a", "b", "c"}


def test_a_comment_inside_a_sentence_ends_it_and_silences_its_first_part():
    text = "One. Two <!-- vqlsp-ignore --> more. Three."
    ignores = find_ignores(text, "plaintext")
    spans = sentences(text, "plaintext")
    assert [text[a:b] for a, b in spans] == ["One.", "Two", "more.", "Three."]
    assert {text[a:b] for a, b in ignores.silenced(text, spans)} == {"Two"}


def test_latex_and_git_comments_break_the_line_after_the_sentence():
    text = "First one. Second one.\n"
    end = text.index(".") + 1
    assert apply(text, insert_sentence_ignore(text, 0, end, "latex")) == "First one. % vqlsp-ignore\nSecond one.\n"
    assert apply(text, insert_sentence_ignore(text, 0, end, "git-commit")) == "First one.\n# vqlsp-ignore\nSecond one.\n"
    last = text.index("Second")
    assert apply(text, insert_sentence_ignore(text, last, len(text) - 1, "git-commit")) == (
        "First one. Second one.\n# vqlsp-ignore\n")


# Pieces that make and break comments of every syntax, and every kind of line break.
_PIECES = ["<!-- vqlsp-ignore -->", "<!-- vqlsp-ignore-label: a, b -->", "% vqlsp-ignore", "\\% vqlsp-ignore",
           ".. vqlsp-ignore", "# vqlsp-ignore", "# vqlsp-ignore-label: x y", "vqlsp-ignore", "-label: c",
           "<!--", "-->", "%", "#", ".. ", " ", "\t", "\n", "\r", "\r\n", "\n\n", "Words.", "x"]


def _texts(max_pieces: int) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(_PIECES), max_size=max_pieces).map("".join)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), chunk_chars=st.sampled_from([1, 3, 8, 64]), language=st.sampled_from(LANGUAGES))
def test_the_chunk_by_chunk_scan_finds_what_a_full_scan_finds_through_edits(data, chunk_chars, language):
    text = data.draw(_texts(40), label="text")
    index, scan = LineIndex(text, chunk_chars), ChunkIgnores(language)
    assert scan.find(*index.chunks()) == find_ignores(text, language)
    for _ in range(data.draw(st.integers(1, 8), label="edits")):
        n = len(text)
        start = data.draw(st.integers(0, n), label="start")
        end = data.draw(st.integers(start, min(n, start + data.draw(st.sampled_from([0, 1, 3, 20, n])))), label="end")
        new_text = data.draw(_texts(4), label="new_text")
        index.apply_change(start, end, new_text)
        text = text[:start] + new_text + text[end:]
        assert scan.find(*index.chunks()) == find_ignores(text, language)


def test_an_edit_rescans_only_the_chunks_it_replaced(monkeypatch):
    line = "A sentence of some length. <!-- vqlsp-ignore -->\n"
    text = line * 400  # ~20 KB: five chunks of 4 KB (CHUNK_CHARS)
    index, scan = LineIndex(text), ChunkIgnores("markdown")
    assert len(scan.find(*index.chunks()).sentences) == 400
    scanned: list[int] = []
    real = ignores_module._hits
    monkeypatch.setattr(ignores_module, "_hits", lambda chunk, syn: scanned.append(len(chunk)) or real(chunk, syn))
    index.apply_change(len(line) * 200, len(line) * 200, "<!-- vqlsp-ignore-label: negative -->\n")
    found = scan.find(*index.chunks())
    assert found.labels == {"negative"} and len(found.sentences) == 400
    assert 0 < sum(scanned) <= 2 * 4096 + 100 < len(text) // 2  # the edited chunk (split in two), not the text
    before = len(scanned)
    assert scan.find(*index.chunks()) == found and len(scanned) == before  # nothing changed: no scan
