"""Sentences and paragraphs of prose as character spans (the span head's units).

A paragraph is a run of non-blank lines; blank lines (only whitespace) separate
paragraphs. A sentence ends at ``.``, ``!``, ``?`` or ``…`` (optionally followed by
closing quotes or brackets) when whitespace or the end of the paragraph follows,
except after a few common abbreviations and single-letter initials. Sentences
never cross a paragraph boundary. Spans are trimmed of surrounding whitespace
and are code-point offsets ``[start, end)`` into the text, in order.

In a marked-up document (``language``: ``markdown``, ``restructuredtext``,
``latex``, ``git-commit``; see ``markup``) sentences and paragraphs are made of
prose only (issue 17, "Markup-aware spans"): the text is split as if inline
markup were opaque filler and block markup were blank lines, so a code block
separates paragraphs while inline code inside a sentence does not end it (it
stays inside the sentence's span); a heading, a list item or a table cell is its
own paragraph; a span never starts or ends on markup, and a span of only markup
is dropped. ``paragraph_starts`` gives the offsets where a section of the
document may be cut. With ``language="plaintext"`` (and for unknown languages)
everything is exactly as described above, but for vqlsp's ignore comments, which are
markup in every language.

This is deliberately a small heuristic: it must be cheap enough to run on every
update of a document, and its job is to give the span head stable, sensible
units, not to be a linguistic sentence splitter. No torch here (DESIGN.md:
``text/`` knows nothing about torch).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from vqlsp.text.markup import Markup, scan

Unit = Literal["sentence", "paragraph"]
UNITS: tuple[str, ...] = ("sentence", "paragraph")


@dataclass(frozen=True)
class Segment:
    start: int  # code-point offset of the first character
    end: int  # one past the last character

    def __len__(self) -> int:
        return self.end - self.start


# A blank line: a newline, then only horizontal whitespace, then a newline.
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
# A sentence terminator, optional closers, then whitespace.
_SENTENCE_END = re.compile(r"(?:[.!?]+|…)[\"'”’)\]»]*(?=\s)")
# The same in masked text (``Markup.masked``), where inline markup is "\0": "*done.* Next";
# "\x01" ends inline markup that ends a sentence (display math ending with a full stop).
_MASKED_SENTENCE_END = re.compile(r"(?:[.!?]+|…|\x01)[\"'”’)\]»]*(?=\0*\s)")
_MARKUP = "\0\x01"
_LEADING_FILLER = re.compile(r"[\s\0\x01,;:]*")
_FILLER = re.compile(r"[\s\0\x01]*")
# Words that end in a period without ending a sentence (lower-cased, without the period).
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "cf",
        "al",
        "fig",
        "no",
        "vol",
        "approx",
        "inc",
        "ltd",
        "co",
        "corp",
        "dept",
        "est",
    ]
)


def paragraphs(text: str) -> list[Segment]:
    """Paragraph spans of ``text``, whitespace-trimmed, empty ones dropped."""
    spans = []
    start = 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return [s for a, b in spans if (s := _trim(text, a, b)) is not None]


def sentences(text: str) -> list[Segment]:
    """Sentence spans of ``text``, whitespace-trimmed, inside paragraphs."""
    out: list[Segment] = []
    for para in paragraphs(text):
        start = para.start
        body = text[para.start : para.end]
        for match in _SENTENCE_END.finditer(body):
            if _is_abbreviation(body, match.start()):
                continue
            end = para.start + match.end()
            if (s := _trim(text, start, end)) is not None:
                out.append(s)
            start = end
        if (s := _trim(text, start, para.end)) is not None:
            out.append(s)
    return out


def segment(text: str, unit: Unit, language: str = "plaintext") -> list[Segment]:
    """The spans of ``unit`` (``"sentence"`` or ``"paragraph"``) in ``text``, a document in
    ``language`` (a languageId; spans hold only its prose)."""
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; choose one of {', '.join(UNITS)}")
    markup = scan(text, language)
    if not markup:
        return sentences(text) if unit == "sentence" else paragraphs(text)
    masked = markup.masked(text)
    paras = _prose_paragraphs(masked, markup)
    if unit == "paragraph":
        return paras
    return [s for para in paras for s in _prose_sentences(masked, para)]


def paragraph_starts(text: str, language: str = "plaintext") -> list[int]:
    """Offsets where a section of ``text`` may be cut: where a paragraph of prose starts.

    In plain text, each paragraph's first character. In a marked-up document, the same for
    each prose paragraph that starts its line, but at the start of the line where markup is
    before it on its line or on lines of only markup right above it (a heading's ``#``, a
    list marker, ``\\section{``, an rST overline, a ``\\label`` or ``\\begin{abstract}``
    stay with their text); a paragraph that starts after prose on its line (a table cell)
    gives none, and neither does one whose cut would fall inside markup or a range that
    must stay whole (a fenced code block, front matter, a LaTeX environment, display math)."""
    markup = scan(text, language)
    if not markup:
        return [p.start for p in paragraphs(text)]
    masked = markup.masked(text)
    out: list[int] = []
    for para in _prose_paragraphs(masked, markup):
        line = masked.rfind("\n", 0, para.start) + 1
        if not _is_filler(masked, line, para.start):
            continue
        cut = line if text[line : para.start].strip() else para.start
        while line > 0:
            above = masked.rfind("\n", 0, line - 1) + 1
            if not text[above : line - 1].strip() or not _is_filler(masked, above, line - 1):
                break
            if markup.inside(above, keep=False):
                break
            line = cut = above
        if not markup.inside(cut) and (not out or out[-1] < cut):
            out.append(cut)
    return out


def _prose_paragraphs(masked: str, markup: Markup) -> list[Segment]:
    """Paragraphs of masked text: split at blank lines and at the markup's breaks."""
    cuts = [m.span() for m in _PARAGRAPH_BREAK.finditer(masked)]
    cuts += [(b, b) for b in markup.breaks]
    cuts.sort()
    spans = []
    start = 0
    for a, b in cuts:
        if a >= start:
            spans.append((start, a))
        start = max(start, b)
    spans.append((start, len(masked)))
    return [s for a, b in spans if b > a and (s := _trim_masked(masked, a, b)) is not None]


def _prose_sentences(masked: str, para: Segment) -> list[Segment]:
    """Sentences of a paragraph of masked text, as ``sentences`` splits plain paragraphs."""
    out: list[Segment] = []
    start = para.start
    body = masked[para.start : para.end]
    for match in _MASKED_SENTENCE_END.finditer(body):
        if _is_abbreviation(body, match.start()):
            continue
        end = para.start + match.end()
        if masked[end - 1] == "\x01":  # the end of display math: trim it off
            s = _trim_masked(masked, start, end)
        else:  # a terminator or closer: only the start needs trimming
            first = _LEADING_FILLER.match(masked, start, end).end()
            s = Segment(first, end) if first < end else None
        if s is not None:
            out.append(s)
        start = end
    first = _LEADING_FILLER.match(masked, start, para.end).end()
    if first < para.end:  # the paragraph's end is trimmed already
        out.append(Segment(first, para.end))
    return out


def _is_abbreviation(body: str, dot: int) -> bool:
    """Whether the terminator at ``body[dot]`` is the period of an abbreviation or initial."""
    if body[dot] != "." or body[dot + 1 : dot + 2] == ".":
        return False
    word_start = dot
    while word_start > 0 and (body[word_start - 1].isalpha() or body[word_start - 1] == "."):
        word_start -= 1
    word = body[word_start:dot]
    if len(word) == 1 and word.isupper():  # an initial: "J. R. R. Tolkien"
        return True
    return word.lower() in _ABBREVIATIONS


def _trim(text: str, start: int, end: int) -> Segment | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Segment(start, end) if end > start else None


def _is_filler(masked: str, start: int, end: int) -> bool:
    """Whether ``masked[start:end]`` is only whitespace and inline markup."""
    return _FILLER.fullmatch(masked, start, end) is not None


def _trim_masked(masked: str, start: int, end: int) -> Segment | None:
    """``_trim`` that also drops inline markup (``"\\0"``, ``"\\x01"``) at either end, and the
    ``,;:`` that no span starts with (what is left of "``debounceMs``: the delay")."""
    start = _LEADING_FILLER.match(masked, start, end).end()
    while end > start and (masked[end - 1].isspace() or masked[end - 1] in _MARKUP):
        end -= 1
    return Segment(start, end) if end > start else None
