"""Sentences and paragraphs of prose as character spans (the span head's units).

A paragraph is a run of non-blank lines; blank lines (only whitespace) separate
paragraphs. A sentence ends at ``.``, ``!``, ``?`` or ``…`` (optionally followed by
closing quotes or brackets) when whitespace or the end of the paragraph follows,
except after a few common abbreviations and single-letter initials. Sentences
never cross a paragraph boundary. Spans are trimmed of surrounding whitespace
and are code-point offsets ``[start, end)`` into the text, in order.

This is deliberately a small heuristic: it must be cheap enough to run on every
update of a document, and its job is to give the span head stable, sensible
units, not to be a linguistic sentence splitter. No torch here (DESIGN.md:
``text/`` knows nothing about torch).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

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


def segment(text: str, unit: Unit) -> list[Segment]:
    """The spans of ``unit`` (``"sentence"`` or ``"paragraph"``) in ``text``."""
    if unit == "sentence":
        return sentences(text)
    if unit == "paragraph":
        return paragraphs(text)
    raise ValueError(f"unknown unit {unit!r}; choose one of {', '.join(UNITS)}")


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
