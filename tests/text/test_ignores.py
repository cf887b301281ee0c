"""Ignore comments per markup language: found where written, inserted where they work, and the
spans they silence (``vqlsp.text.ignores``); the markup layer reads them as markup, so no span
sits on them."""

from __future__ import annotations

import pytest

from vqlsp.text.ignores import (
    NONE,
    find_ignores,
    insert_label_ignore,
    insert_sentence_ignore,
    syntax,
)
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
