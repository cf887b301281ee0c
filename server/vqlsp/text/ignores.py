"""Ignore comments: what a writer puts in a file to silence vqlsp, per markup language.

Two comments, each in the comment syntax of the file's language:

* ``vqlsp-ignore`` silences *the sentence (or paragraph) it follows*: the span the comment
  sits in, else the last span that ends before it. It goes right after the sentence, on the
  same line, so that it moves with the sentence as the text around it is edited. In
  reStructuredText, which has no inline comments, it is a comment block after a paragraph
  and silences every span of that paragraph.
* ``vqlsp-ignore-label: negative, sentiment/positive`` anywhere in the file silences those
  labels (a bare label, or ``head/label`` for one span head's) in the whole file.

============================  ===================================  ==========================
language                      sentence                             label in the file
============================  ===================================  ==========================
Markdown, HTML, plain text    ``The sentence. <!-- vqlsp-ignore -->``  ``<!-- vqlsp-ignore-label: x -->``
LaTeX                         ``The sentence. % vqlsp-ignore``     ``% vqlsp-ignore-label: x``
reStructuredText              ``.. vqlsp-ignore`` (after a paragraph)  ``.. vqlsp-ignore-label: x``
git commit message            ``# vqlsp-ignore`` (a line after it) ``# vqlsp-ignore-label: x``
============================  ===================================  ==========================

``markup.scan`` reads these comments as markup in every language, plain text included, and
each one ends the sentence before it: no span ever covers one, and the comment is not part of
the sentence after it.

``insert_sentence_ignore`` and ``insert_label_ignore`` say where the code actions put them
(as code-point offsets; ``lsp/actions.py`` turns them into a ``WorkspaceEdit``).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from itertools import compress

MARK = "vqlsp-ignore"
# A comment never crosses a line break, and lines end at "\n", "\r\n" or "\r" as in LSP (not
# only at "\n" as for re's ^ and $): so a text kept in chunks cut at line starts
# (``positions.LineIndex``) can be scanned chunk by chunk (``ChunkIgnores``).
_LINE_START = r"(?<![^\r\n])"
_LINE_END = r"(?![^\r\n])"
_LABELS = r"(?:-label:(?P<labels>[^\r\n]*?))?"
_HTML = re.compile(r"<!--[ \t]*vqlsp-ignore" + _LABELS.replace(r"[^\r\n]", r"[^\r\n>]") + r"[ \t]*-->")
_LATEX = re.compile(r"(?<!\\)%[ \t]*vqlsp-ignore" + _LABELS + r"[ \t]*" + _LINE_END)
_RST = re.compile(_LINE_START + r"[ \t]*\.\.[ \t]+vqlsp-ignore" + _LABELS + r"[ \t]*" + _LINE_END)
_GIT = re.compile(_LINE_START + r"#[ \t]*vqlsp-ignore" + _LABELS + r"[ \t]*" + _LINE_END)
_BLANK_LINE = re.compile(r"\n[ \t\r]*\n")


@dataclass(frozen=True)
class Syntax:
    pattern: re.Pattern
    sentence: str  # the sentence comment, as inserted
    label: str  # the label comment, with ``{}`` for the label
    line: bool  # a comment that takes the rest of its line (inserted with a line break after)
    block: bool = False  # a comment block after a paragraph (silences the whole paragraph)


HTML = Syntax(_HTML, " <!-- vqlsp-ignore -->", "<!-- vqlsp-ignore-label: {} -->", line=False)
SYNTAX = {
    "latex": Syntax(_LATEX, " % vqlsp-ignore", "% vqlsp-ignore-label: {}", line=True),
    "tex": Syntax(_LATEX, " % vqlsp-ignore", "% vqlsp-ignore-label: {}", line=True),
    "restructuredtext": Syntax(_RST, ".. vqlsp-ignore", ".. vqlsp-ignore-label: {}", line=True, block=True),
    "git-commit": Syntax(_GIT, "# vqlsp-ignore", "# vqlsp-ignore-label: {}", line=True),
}


def syntax(language: str) -> Syntax:
    """The ignore comments of ``language`` (a languageId; anything else uses HTML comments)."""
    return SYNTAX.get(language.lower(), HTML)


@dataclass(frozen=True)
class Ignores:
    """The ignore comments of one text."""

    sentences: tuple[tuple[int, int], ...] = ()  # each sentence comment's (start, end)
    labels: frozenset[str] = frozenset()  # labels ignored in the whole file
    block: bool = False  # the comments are blocks after a paragraph (rst)

    def silenced(self, text: str, spans: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
        """The ``(start, end)`` of the spans the sentence comments silence (``spans`` sorted)."""
        out: set[tuple[int, int]] = set()
        starts = [s for s, _ in spans]
        for a, b in self.sentences:
            j = bisect_left(starts, a)  # spans inside the comment (none: it is markup)
            while j < len(spans) and spans[j][1] <= b:
                out.add(spans[j])
                j += 1
            i = bisect_right(starts, a - 1) - 1  # the last span starting before the comment
            if i < 0:
                continue
            if spans[i][1] > a and not self.block:  # the comment sits inside it (merged markup)
                out.add(spans[i])
                continue
            while i >= 0 and spans[i][1] > a:  # spans that start before it and run past it
                i -= 1
            if i < 0:
                continue
            out.add(spans[i])
            while self.block and i > 0 and not _BLANK_LINE.search(text, spans[i - 1][1], spans[i][0]):
                i -= 1
                out.add(spans[i])
        return out


NONE = Ignores()


# One comment: its (start, end), and the labels it names (None: a sentence comment).
_Hit = tuple[int, int, tuple[str, ...] | None]


def _hits(text: str, syn: Syntax) -> tuple[_Hit, ...]:
    if MARK not in text:
        return ()
    return tuple((m.start(), m.end(), None if (names := m.group("labels")) is None
                  else tuple(x for x in re.split(r"[\s,]+", names) if x))
                 for m in syn.pattern.finditer(text))


def _ignores(hits: list[_Hit], syn: Syntax) -> Ignores:
    if not hits:
        return NONE
    sentences = tuple((a, b) for a, b, names in hits if names is None)
    labels = frozenset(x for _, _, names in hits if names is not None for x in names)
    return Ignores(sentences, labels, syn.block)


def find_ignores(text: str, language: str) -> Ignores:
    """The ignore comments in ``text`` (a ``str.find`` when there are none)."""
    syn = syntax(language)
    return _ignores(list(_hits(text, syn)), syn)


class ChunkIgnores:
    """``find_ignores`` for a text kept in chunks cut at line starts, as ``LineIndex`` keeps a
    document's: each chunk's comments are remembered by its content, so after an edit only the
    chunks it replaced are scanned. The rest is C-speed look-ups (``map``, ``compress``), and
    Python work only for chunks that hold comments."""

    def __init__(self, language: str) -> None:
        self.language = language
        self._syntax = syntax(language)
        self._known: dict[str, tuple[_Hit, ...]] = {}  # the last text's chunks -> their comments

    def find(self, starts: Sequence[int], chunks: Sequence[str]) -> Ignores:
        """The ignore comments of the text made of ``chunks`` (in order, each starting a line,
        chunk ``k`` at offset ``starts[k]``): the same as ``find_ignores`` of the joined text."""
        found = list(map(self._known.get, chunks))
        k = -1
        with suppress(ValueError):
            while True:  # the chunks not seen last time
                k = found.index(None, k + 1)
                found[k] = _hits(chunks[k], self._syntax)
        self._known = dict(zip(chunks, found))
        hits = [(starts[k] + a, starts[k] + b, names)
                for k in compress(range(len(found)), found) for a, b, names in found[k]]
        return _ignores(hits, self._syntax)


def insert_sentence_ignore(text: str, start: int, end: int, language: str) -> tuple[int, int, str]:
    """``(from, to, new_text)``: the edit that silences the span ``text[start:end]``."""
    syn = syntax(language)
    if syn.block:  # after the paragraph, as a block of its own
        blank = _BLANK_LINE.search(text, end)
        at = blank.start() if blank else len(text.rstrip("\n \t\r"))
        return at, at, "\n\n" + syn.sentence
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    rest = text[end:line_end]
    if syn is SYNTAX["git-commit"]:  # a comment line of its own, after the sentence's line part
        if not rest.strip():
            return line_end, line_end, "\n" + syn.sentence
        skip = len(rest) - len(rest.lstrip(" \t"))
        return end, end + skip, "\n" + syn.sentence + "\n"
    if syn.line and rest.strip():  # the comment takes the rest of the line: break it there
        skip = len(rest) - len(rest.lstrip(" \t"))
        return end, end + skip, syn.sentence + "\n"
    return end, end, syn.sentence


def insert_label_ignore(text: str, label: str, language: str) -> tuple[int, int, str]:
    """``(from, to, new_text)``: the edit that silences ``label`` in the whole file, a comment
    on a line of its own at the end of the file (never inside front matter or a subject line)."""
    comment = syntax(language).label.format(label)
    lead = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
    return len(text), len(text), lead + comment + "\n"
