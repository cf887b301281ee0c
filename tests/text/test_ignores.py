"""Ignore comments per markup language: found where written, inserted where they work, and the
spans they silence (``vqlsp.text.ignores``); the markup layer reads them as markup, so no span
sits on them."""

from __future__ import annotations

import pytest

from vqlsp.text.ignores import NONE, find_ignores, insert_label_ignore, insert_sentence_ignore
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
        assert silenced - {"<!-- vqlsp-ignore -->"} == {"The committee met."}
    if language == "plaintext":  # no comments in plain text: the next sentence starts with it
        assert "<!-- vqlsp-ignore --> It approved the budget!" in [text[a:b] for a, b in spans]
        return
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
    assert [text[a:b] for a, b in sentences(text, language)] == [TEXT[a:b] for a, b in sentences(TEXT, language)] or \
        language == "plaintext"


def test_comments_in_another_syntax_or_escaped_are_not_read():
    assert find_ignores("No comments here.", "markdown") is NONE
    assert find_ignores("100\\% vqlsp-ignore", "latex").sentences == ()
    assert find_ignores("<!-- vqlsp-ignore -->", "latex").sentences == ()
    assert find_ignores("text # vqlsp-ignore", "git-commit").sentences == ()  # not a comment line
    assert find_ignores("<!-- vqlsp-ignore-label: a, b c -->", "markdown").labels == {"a", "b", "c"}


def test_a_comment_inside_a_sentence_silences_that_sentence():
    text = "One. Two <!-- vqlsp-ignore --> more. Three."
    ignores = find_ignores(text, "plaintext")
    spans = sentences(text, "plaintext")
    assert {text[a:b] for a, b in ignores.silenced(text, spans)} == {"Two <!-- vqlsp-ignore --> more."}


def test_latex_and_git_comments_break_the_line_after_the_sentence():
    text = "First one. Second one.\n"
    end = text.index(".") + 1
    assert apply(text, insert_sentence_ignore(text, 0, end, "latex")) == "First one. % vqlsp-ignore\nSecond one.\n"
    assert apply(text, insert_sentence_ignore(text, 0, end, "git-commit")) == "First one.\n# vqlsp-ignore\nSecond one.\n"
    last = text.index("Second")
    assert apply(text, insert_sentence_ignore(text, last, len(text) - 1, "git-commit")) == (
        "First one. Second one.\n# vqlsp-ignore\n")
