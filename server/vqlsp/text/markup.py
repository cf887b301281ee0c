"""Which characters of a marked-up document are not prose (issue 17, "Markup-aware spans").

``scan(text, language)`` returns the markup of ``text`` as sorted, non-overlapping
``Region(start, end, kind)`` code-point ranges; ``segments`` then finds sentences and
paragraphs in the prose only. ``language`` is an LSP / VS Code languageId: ``markdown``,
``restructuredtext``, ``latex`` (also ``tex``), ``git-commit``; ``plaintext`` and unknown ids
have no markup but vqlsp's own ignore comments (``<!-- vqlsp-ignore -->``, ``ignores``), which
are markup in every language and end the sentence before them. A region's kind says how the prose around it reads:

* ``BLOCK``  a boundary: the prose before and after it are different paragraphs (a code
  block, a list or heading marker, a table pipe, a LaTeX ``\\begin{itemize}``);
* ``INLINE`` part of the sentence around it: it neither ends the sentence nor breaks the
  paragraph (inline code, math, a URL, an HTML tag, a LaTeX ``\\cite{...}``);
* ``BLANK``  reads as whitespace: a line of only BLANK markup is a blank line (Markdown's
  block-quote ``>``, LaTeX's ``~``).

``Markup.breaks`` are extra paragraph boundaries that are not markup (the end of a heading's
line), and ``Markup.keep`` are ranges that no section cut may fall inside (LaTeX
environments, front matter, code blocks, display math).

What counts as markup, per language (what is prose is everything else):

* **Markdown** (CommonMark + GFM, approximately): YAML/TOML front matter at the top; fenced
  and indented code blocks; raw ``<script>/<style>/<pre>/<textarea>`` blocks; inline code;
  ``$...$`` and ``$$...$$`` math (``\\(`` and ``\\[`` are escapes in Markdown, not math);
  HTML comments and tags (and the content of ``<code>``/``<kbd>``/``<samp>``); autolinks, bare
  URLs and e-mail addresses; images whole; links' ``[`` and ``](url "title")`` (the link text
  is prose); reference and footnote markers; link reference definitions; emphasis and
  strikethrough delimiters; heading ``#`` markers and setext underlines; thematic breaks;
  list markers and task boxes; block-quote ``>`` markers; table pipes and delimiter rows.
  A heading, a list item and a table cell are each their own paragraph; block-level HTML
  tags (``<p>``, ``<div>``, ``<details>``, ...) separate paragraphs, inline ones do not.
* **reStructuredText**: directives (``.. name:: args`` and options); the content of
  admonition-like directives (``note``, ``warning``, ``versionadded``, ``figure``'s caption,
  ...) is prose, that of every other directive (``code-block``, ``math``, ``toctree``,
  ``image``, unknown ones) is markup; comments, targets, substitution definitions; literal
  blocks after ``::`` (the ``::`` reads as ``:``) and doctest blocks; section adornments
  and transitions; table borders and pipes; list, field and line-block markers; inline
  literals; roles (whole, except prose roles such as ``:emphasis:`` or ``:term:``, whose
  text is prose); the default role `` `x` `` whole (Sphinx projects use it for code);
  hyperlink references' backticks, ``<url>`` and ``_`` (their text is prose); footnote,
  citation and substitution references; emphasis delimiters; bare URLs.
* **LaTeX**: the preamble and everything after ``\\end{document}``; comments; math
  (``$``, ``$$``, ``\\(...\\)``, ``\\[...\\]`` and math environments, all INLINE: display
  math belongs to its sentence); verbatim-like environments (``verbatim``, ``lstlisting``,
  ``minted``, ``tikzpicture``, ``thebibliography``, ...) and ``\\verb``; ``\\begin{env}`` /
  ``\\end{env}`` with their arguments; command names with their ``[...]`` options. A
  command's braced argument is prose unless the command is known not to take prose:
  ``\\label``, ``\\ref``, ``\\cite`` (all variants), ``\\url``, ``\\includegraphics``,
  ``\\footnote`` (masked whole, so the sentence around it stays one span), ``\\texttt``,
  definitions and lengths are masked whole. Sectioning commands and ``\\caption`` are
  paragraph boundaries whose title is its own paragraph; ``\\item`` is a boundary (a
  description label is its own paragraph); in tables ``&`` and ``\\\\`` separate cells.
  ``\\%``-style escapes mask only the backslash.
* **git commit messages**: comment lines (``#``, git's default ``core.commentChar``); the
  scissors line and everything below it, or a diff if there is no scissors line; the
  trailer block (``Signed-off-by: ...``); a Conventional Commits prefix (``fix(lsp): ``).
  The subject line is its own paragraph. The body is read as Markdown (code, lists, URLs).

Every scanner is a linear pass of a few regular expressions per line: ``segments`` runs
it on every update of a section (a few KB). No torch here.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from vqlsp.text.ignores import MARK, syntax


class Kind(IntEnum):
    BLANK = 0  # reads as whitespace
    INLINE = 1  # part of the sentence around it
    BLOCK = 2  # a paragraph boundary


class Region(NamedTuple):
    start: int
    end: int
    kind: Kind


@dataclass(frozen=True)
class Markup:
    regions: tuple[Region, ...]  # sorted, non-overlapping, non-empty
    breaks: tuple[int, ...]  # sorted paragraph boundaries: BLOCK region edges and `extra` breaks
    keep: tuple[tuple[int, int], ...]  # sorted, merged: no section cut strictly inside
    stops: tuple[int, ...] = ()  # ends of INLINE regions that end a sentence ("... x = 1.\]")

    def __bool__(self) -> bool:
        return bool(self.regions or self.breaks)

    def masked(self, text: str) -> str:
        """``text`` with INLINE markup as ``"\\0"`` (``"\\x01"`` as the last character of one
        that ends a sentence) and BLOCK/BLANK markup as spaces (newlines kept), same length:
        what ``segments`` splits."""
        parts = []
        prev = 0
        stops = set(self.stops)
        for start, end, kind in self.regions:
            parts.append(text[prev:start])
            if kind == Kind.INLINE:
                parts.append("\0" * (end - start - 1) + ("\x01" if end in stops else "\0"))
            elif "\n" in text[start:end]:
                parts.append(_NOT_NEWLINE.sub(" ", text[start:end]))
            else:
                parts.append(" " * (end - start))
            prev = end
        parts.append(text[prev:])
        return "".join(parts)

    def inside(self, offset: int, keep: bool = True) -> bool:
        """Whether a cut at ``offset`` would fall strictly inside markup (or a ``keep`` range)."""
        for ranges in (self.regions, self.keep) if keep else (self.regions,):
            i = bisect_right(ranges, (offset, float("inf"))) - 1
            if i >= 0 and ranges[i][0] < offset < ranges[i][1]:
                return True
        return False


EMPTY = Markup((), (), ())
_new_tuple = tuple.__new__  # Region(*r) without NamedTuple's Python-level __new__


def scan(text: str, language: str) -> Markup:
    """The markup of ``text`` written in ``language`` (a languageId; unknown ones are plain)."""
    scanner = _SCANNERS.get(language.lower())
    ignores = MARK in text
    if scanner is None and not ignores:
        return EMPTY
    found = _Found(text)
    if scanner is not None:
        scanner(text, found)
    if ignores:
        _ignore_comments(text, language, found)
    return found.finish()


def _ignore_comments(text: str, language: str, found: _Found) -> None:
    """vqlsp's own ignore comments (``ignores``) are markup in every language, plain text
    included, and each ends the sentence before it: no span ever covers one."""
    for m in syntax(language).pattern.finditer(text):
        found.add(m.start(), m.end(), Kind.INLINE)
        found.stops.append(m.end())


def markup_regions(text: str, language: str) -> list[tuple[int, int]]:
    """The markup of ``text`` as sorted, non-overlapping, non-touching ``(start, end)`` ranges."""
    out: list[tuple[int, int]] = []
    for start, end, _ in scan(text, language).regions:
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


# -- shared pieces ---------------------------------------------------------------------------

_NOT_NEWLINE = re.compile(r"[^\n]")
_DELIMITER_RUNS = {"*": re.compile(r"\*+"), "_": re.compile(r"_+"), "~": re.compile(r"~+")}
_BLANK_LINE = re.compile(r"\n[ \t\r]*\n")
# Patterns start with a literal where they can: re then skips ahead to it (10x faster).
_URL = re.compile(r"(?:https?://|ftp://|file://|www\.)[^\s<>\"'`\0\\]+")
_EMAIL_USER = re.compile(r"[\w.+-]+\Z")
_EMAIL_HOST = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_URL_TAIL = ".,;:!?*_~'\""
# What may follow the last sentence of display math: "x = 1. \label{eq:x} \end{equation}".
_DISPLAY_TAIL = re.compile(
    r"(?:\s|\\label\{[^{}]*\}|\\(?:nonumber|notag)(?![A-Za-z])|\\\\|\\end\s*\{[^{}]*\}|\\\]|\$\$)*\Z"
)


class _Found:
    """Regions and breaks as a scanner finds them, in any order."""

    def __init__(self, text: str):
        self.text = text
        self.regions: list[tuple[int, int, Kind]] = []
        self.extra: list[int] = []
        self.keeps: list[tuple[int, int]] = []
        self.stops: list[int] = []

    def add(self, start: int, end: int, kind: Kind) -> None:
        if end > start:
            self.regions.append((start, end, kind))

    def brk(self, offset: int) -> None:
        self.extra.append(offset)

    def keep(self, start: int, end: int) -> None:
        if end > start:
            self.keeps.append((start, end))

    def display(self, start: int, end: int) -> None:
        """Display math from ``start`` to ``end``: INLINE, kept whole, and the end of its
        sentence if it ends with a full stop (before any ``\\label``, ``\\end{...}``, ``$$``)."""
        self.add(start, end, Kind.INLINE)
        self.keep(start, end)
        body = _DISPLAY_TAIL.sub("", self.text[start:end])
        if body.endswith((".", "!", "?")):
            self.stops.append(end)

    def finish(self) -> Markup:
        merged: list[tuple[int, int, Kind]] = []
        last_start, last_end, last_kind = -1, -1, Kind.BLANK
        for start, end, kind in sorted(self.regions):
            if start < last_end or (start == last_end and kind == last_kind):
                # Overlapping (or touching, of one kind): one region of the stronger kind.
                last_end, last_kind = max(last_end, end), max(last_kind, kind)
                merged[-1] = (last_start, last_end, last_kind)
            else:
                last_start, last_end, last_kind = start, end, kind
                merged.append((start, end, kind))
        regions = [_new_tuple(Region, r) for r in merged]
        breaks = set(self.extra)
        for start, end, kind in merged:
            if kind == Kind.BLOCK:
                breaks.add(start)
                breaks.add(end)
        keep: list[tuple[int, int]] = []
        for start, end in sorted(self.keeps):
            if keep and start < keep[-1][1]:
                keep[-1] = (keep[-1][0], max(keep[-1][1], end))
            else:
                keep.append((start, end))
        ends = {r.end for r in regions if r.kind == Kind.INLINE}
        stops = tuple(sorted(e for e in set(self.stops) if e in ends))
        return Markup(tuple(regions), tuple(sorted(breaks)), tuple(keep), stops)

    def working_copy(self, lo: int, hi: int) -> str:
        """``text[lo:hi]`` with the regions found so far blanked: BLOCK ones as newlines (so
        that no inline construct matches across them), others as spaces; same length."""
        parts = []
        prev = lo
        for start, end, kind in sorted(self.regions):
            start, end = max(start, prev), min(end, hi)
            if end <= start:
                continue
            parts.append(self.text[prev:start])
            parts.append(("\n" if kind == Kind.BLOCK else " ") * (end - start))
            prev = end
        parts.append(self.text[prev:hi])
        return "".join(parts)


def _blank(s: str, spans: list[tuple[int, int]]) -> str:
    """``s`` with the sorted, non-overlapping ``spans`` replaced by ``"\\0"``."""
    if not spans:
        return s
    parts = []
    prev = 0
    for a, b in spans:
        if a < prev:
            a = prev
        parts.append(s[prev:a])
        parts.append("\0" * max(0, b - a))
        prev = max(prev, b)
    parts.append(s[prev:])
    return "".join(parts)


def _whole(pattern: re.Pattern, s: str, base: int, found: _Found, kind: Kind = Kind.INLINE) -> str:
    """Every match of ``pattern`` in ``s`` is markup; returns ``s`` with them blanked."""
    spans = [m.span() for m in pattern.finditer(s)]
    for a, b in spans:
        found.add(base + a, base + b, kind)
    return _blank(s, spans)


def _urls(s: str, base: int, found: _Found) -> str:
    """Bare URLs (without trailing punctuation or an unbalanced ``)``) and e-mail addresses."""
    spans = []
    for m in _URL.finditer(s):
        a, b = m.span()
        if a > 0 and (s[a - 1].isalnum() or s[a - 1] in "_@/."):
            continue
        while b > a:
            last = s[b - 1]
            if last in _URL_TAIL or (last in ")]" and s.count("(" if last == ")" else "[", a, b) < s.count(last, a, b)):
                b -= 1
            else:
                break
        spans.append((a, b))
    at = s.find("@")
    while at > 0:
        user = _EMAIL_USER.search(s, max(0, at - 64), at)
        host = _EMAIL_HOST.match(s, at + 1)
        if user and host and not (user.start() > 0 and s[user.start() - 1] in ".+-"):
            spans.append((user.start(), host.end()))
        at = s.find("@", at + 1)
    spans.sort()
    for a, b in spans:
        found.add(base + a, base + b, Kind.INLINE)
    return _blank(s, spans)


def _delimiters(s: str, base: int, found: _Found, chars: str) -> str:
    """Emphasis delimiter runs of ``chars`` (``*``, ``_``, ``~~``) that can open or close."""
    spans = []
    n = len(s)
    for ch in chars:
        if ch not in s:
            continue
        for m in _DELIMITER_RUNS[ch].finditer(s):
            a, b = m.span()
            before = s[a - 1] if a else " "
            after = s[b] if b < n else " "
            if before == "\\" or (ch == "~" and b - a < 2):
                continue
            if ch == "~":
                opens, closes = not after.isspace(), not before.isspace()
            else:
                opens = not (before.isalnum() or before == "_") and not after.isspace()
                closes = not before.isspace() and not (after.isalnum() or after == "_")
            if opens or closes:
                spans.append((a, b))
    spans.sort()
    for a, b in spans:
        found.add(base + a, base + b, Kind.INLINE)
    return _blank(s, spans)


def _words(words: str) -> frozenset[str]:
    return frozenset(words.split())


def _lines(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each line in ``text[lo:hi]``, without its ``"\\n"``."""
    out = []
    a = lo
    for line in text[lo:hi].split("\n"):
        b = a + len(line)
        out.append((a, b))
        a = b + 1
    return out


def _indent(text: str, a: int, b: int) -> tuple[int, int]:
    """(column width, offset) of the first non-blank character of the line ``text[a:b]``
    (``b`` if it is blank)."""
    if a < b and text[a] not in " \t\r":  # the common case: no indentation
        return 0, a
    line = text[a:b]
    rest = line.lstrip(" \t")
    first = a + len(line) - len(rest)
    if rest.isspace():
        first = b
    if "\t" not in text[a:first]:
        return first - a, first
    return len(text[a:first].expandtabs(4)), first


def _is_blank(text: str, a: int, b: int) -> bool:
    return a >= b or text[a:b].isspace()


# -- Markdown --------------------------------------------------------------------------------

_MD_QUOTE = re.compile(r"(?:[ \t]{0,3}>[ \t]?)+")
_MD_FENCE = re.compile(r"[ \t]*(`{3,}|~{3,})")
_MD_THEMATIC = re.compile(r"[ \t]{0,3}([-*_])(?:[ \t]*\1){2,}[ \t\r]*$")
_MD_SETEXT = re.compile(r"[ \t]{0,3}(?:=+|-+)[ \t\r]*$")
_MD_ATX = re.compile(r"[ \t]{0,3}#{1,6}(?:[ \t]+|(?=\r?$))")
_MD_ATX_CLOSE = re.compile(r"[ \t]+#+[ \t\r]*$|[ \t\r]+$")
_MD_LIST = re.compile(r"[ \t]*(?:[-+*]|(\d{1,9})[.)])(?:[ \t]+(?:\[[ xX]\][ \t]+)?|(?=\r?$))")
_MD_REF_DEF = re.compile(r"[ \t]{0,3}\[(?!\^)[^\]\n]+\]:[ \t]*\S")
_MD_FOOTNOTE_DEF = re.compile(r"[ \t]{0,3}\[\^[^\]\n]+\]:[ \t]*")
_MD_TABLE_DELIM = re.compile(r"[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t\r]*$")
_MD_RAW_BLOCK = re.compile(r"[ \t]{0,3}<(script|style|pre|textarea)(?=[\s>]|$)", re.I)
_MD_COMMENT_BLOCK = re.compile(r"[ \t]{0,3}<!--")
_MD_PIPE = re.compile(r"\|(?<!\\\|)")
# First characters of a line that may start something other than a paragraph line.
_MD_BLOCK_STARTS = frozenset("`~<=-*_#[+0123456789")

_MD_BACKTICKS = re.compile(r"``*")
_MD_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_MD_AUTOLINK = re.compile(
    r"<(?:[A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*|[\w.+-]+@[\w-]+(?:\.[\w-]+)+)>"
)
_MD_HTML_RAW = re.compile(r"<(code|kbd|samp|var|script|style)\b[^>]*>.*?</\1\s*>", re.S | re.I)
_MD_HTML_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9-]*)(?:\s[^<>]*)?/?>")
_MD_DISPLAY_MATH = re.compile(r"\$\$(?<![\\$]\$\$)(?:[^$\\\n]|\\.|\$(?!\$)|\n(?![ \t\r]*\n))+?\$\$")
_MD_MATH = re.compile(r"\$(?<![\\$\w]\$)(?=[^\s$])(?:[^$\\\n]|\\.)*?(?<=[^\s\\])\$(?![\d$])")
_LINK_DEST = r"[ \t]*(?:<[^<>\n]*>|(?:[^\s()\\]|\\.|\((?:[^\s()\\]|\\.)*\))*)(?:[ \t\n]+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^()\n]*\)))?[ \t]*"
_LINK_TEXT = r"(?:[^\[\]\n\\]|\\.|\n(?![ \t\r]*\n))*"
_MD_IMAGE = re.compile(r"!\[" + _LINK_TEXT + r"\](?:\(" + _LINK_DEST + r"\)|\[[^\[\]\n]*\])")
_MD_LINK = re.compile(
    r"\[" + _LINK_TEXT + r"(?P<close>\])(?:\(" + _LINK_DEST + r"\)|\[[^\[\]\n]*\])"
)
_MD_FOOTNOTE_REF = re.compile(r"\[\^[^\]\s]+\]")
# HTML tags that start a block: the prose before and after them are different paragraphs.
_HTML_BLOCK_TAGS = _words(
    "address article aside blockquote body caption center dd details dialog div dl dt "
    "fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 header hr html li main nav "
    "ol p section summary table tbody td tfoot th thead tr ul"
)


def _markdown(text: str, found: _Found) -> None:
    _markdown_blocks(text, found, 0, len(text), front_matter=True, comment=None, nested=True)
    _markdown_inline(text, found, 0, len(text))


def _markdown_blocks(
    text: str,
    found: _Found,
    lo: int,
    hi: int,
    *,
    front_matter: bool,
    comment: re.Pattern | None,
    nested: bool,
) -> None:
    """The line-level markup of Markdown in ``text[lo:hi]``; ``comment`` lines are BLOCK and
    read as blank lines, and without ``nested`` an indented block after a list item is code,
    not the item's next paragraph (both for git commit messages)."""
    lines = _lines(text, lo, hi)
    n = len(lines)
    i = 0
    if front_matter and n and text[lines[0][0] : lines[0][1]].rstrip() in ("---", "+++"):
        fence = text[lines[0][0] : lines[0][1]].rstrip()
        closers = ("---", "...") if fence == "---" else ("+++",)
        for j in range(1, n):
            if text[lines[j][0] : lines[j][1]].rstrip() in closers:
                found.add(lines[0][0], lines[j][1], Kind.BLOCK)
                found.keep(lines[0][0], lines[j][1])
                i = j + 1
                break
    in_para = False  # the previous line can be continued by this one (lazy continuation)
    list_col: int | None = None  # content column of the open list item
    after_blank = True
    while i < n:
        a, b = lines[i]
        if comment is not None and comment.match(text, a, b):
            found.add(a, b, Kind.BLOCK)
            in_para, after_blank, i = False, True, i + 1
            continue
        c = a
        width, first = _indent(text, a, b)
        quote = None
        if first < b and text[first] == ">" and (quote := _MD_QUOTE.match(text, a, b)):
            found.add(a, quote.end(), Kind.BLANK)
            c = quote.end()
            width, first = _indent(text, c, b)
        if first == b:
            in_para, after_blank, i = False, True, i + 1
            continue
        ch = text[first]
        if list_col is not None and after_blank and width < list_col and not _MD_LIST.match(text, c, b):
            list_col = None
        code_col = (list_col or 0) + 4
        if ch not in _MD_BLOCK_STARTS and width < code_col and "|" not in text[first:b]:
            in_para, after_blank, i = True, False, i + 1  # the common case: a line of prose
            continue
        if (
            ch in "`~"
            and (fence := _MD_FENCE.match(text, c, b))
            and (ch == "~" or "`" not in text[fence.end() : b])
        ):
            i = _markdown_fence(text, found, lines, i, c, fence.group(1), quote is not None)
            in_para, after_blank = False, False
            continue
        if width >= code_col and not in_para:
            j, last = i + 1, i
            while j < n:
                ja, jb = lines[j]
                w, f = _indent(text, ja, jb)
                if f < jb:
                    if w < code_col:
                        break
                    last = j
                j += 1
            found.add(a, lines[last][1], Kind.BLOCK)
            found.keep(a, lines[last][1])
            in_para, after_blank, i = False, False, last + 1
            continue
        if ch == "<" and (raw := _MD_RAW_BLOCK.match(text, c, b) or _MD_COMMENT_BLOCK.match(text, c, b)):
            if raw.re is _MD_RAW_BLOCK:
                close = re.compile(r"</" + raw.group(1) + r"\s*>", re.I).search(text, c, hi)
                end = hi if close is None else close.end()
            else:
                close_at = text.find("-->", c, hi)
                end = hi if close_at < 0 else close_at + 3
            j = i
            while j < n - 1 and lines[j][1] < end:
                j += 1
            found.add(c, end, Kind.BLOCK)
            if raw.re is _MD_RAW_BLOCK:
                found.keep(c, end)
            in_para, after_blank, i = False, False, j + 1
            continue
        if (ch in "=-" and in_para and _MD_SETEXT.match(text, c, b)) or (
            ch in "-*_" and _MD_THEMATIC.match(text, c, b)
        ):
            found.add(c, b, Kind.BLOCK)
            in_para, after_blank, i = False, False, i + 1
            continue
        if ch == "#" and (atx := _MD_ATX.match(text, c, b)):
            found.add(c, atx.end(), Kind.BLOCK)
            if close := _MD_ATX_CLOSE.search(text, atx.end(), b):
                found.add(close.start(), b, Kind.BLOCK)
            found.brk(b)
            in_para, after_blank, i = False, False, i + 1
            continue
        if ch == "[" and not in_para:
            if note := _MD_FOOTNOTE_DEF.match(text, c, b):
                found.add(c, note.end(), Kind.BLOCK)
                in_para, after_blank, i = True, False, i + 1
                continue
            if _MD_REF_DEF.match(text, c, b):
                found.add(c, b, Kind.BLOCK)
                in_para, after_blank, i = False, False, i + 1
                continue
        if "|" in text[c:b] and i + 1 < n and (j := _markdown_table(text, found, lines, i, c, quote is not None)):
            in_para, after_blank, i = False, False, j
            continue
        if ch in "-+*0123456789" and (item := _MD_LIST.match(text, c, b)):
            number = item.group(1)
            if not in_para or list_col is not None or number is None or number == "1":
                found.add(first, item.end(), Kind.BLOCK)
                if nested:
                    list_col = item.end() - c if item.end() < b else width + 2
                in_para, after_blank, i = True, False, i + 1
                continue
        in_para, after_blank, i = True, False, i + 1


def _markdown_fence(
    text: str, found: _Found, lines: list[tuple[int, int]], i: int, c: int, marker: str, quoted: bool
) -> int:
    """A fenced code block opening at line ``i`` (from ``c``): BLOCK up to its closing fence
    (or the end); returns the index of the line after it."""
    close = re.compile(r"[ \t]*" + re.escape(marker[0]) + "{" + str(len(marker)) + r",}[ \t\r]*$")
    n = len(lines)
    j = i + 1
    while j < n:
        qa, qb = lines[j]
        if quoted and (q := _MD_QUOTE.match(text, qa, qb)):
            qa = q.end()
        if close.match(text, qa, qb):
            break
        j += 1
    end = lines[min(j, n - 1)][1]
    found.add(c, end, Kind.BLOCK)
    found.keep(c, end)
    return j + 1


def _markdown_table(
    text: str, found: _Found, lines: list[tuple[int, int]], i: int, c: int, quoted: bool
) -> int:
    """A GFM table whose header is line ``i`` (from ``c``), if line ``i + 1`` is a delimiter
    row: its pipes and delimiter row are BLOCK (each cell is its own paragraph) and it stays
    whole; returns the index of the line after it, or 0 if there is no table."""
    n = len(lines)
    da, db = lines[i + 1]
    if quoted and (q := _MD_QUOTE.match(text, da, db)):
        da = q.end()
    if "|" not in text[da:db] or "-" not in text[da:db] or not _MD_TABLE_DELIM.match(text, da, db):
        return 0
    found.add(da, db, Kind.BLOCK)
    j = i
    while j < n:
        ra, rb = lines[j]
        if quoted and (q := _MD_QUOTE.match(text, ra, rb)):
            ra = q.end()
        if _is_blank(text, ra, rb) or (j > i + 1 and "|" not in text[ra:rb]):
            break
        if j != i + 1:
            for m in _MD_PIPE.finditer(text, ra, rb):
                found.add(m.start(), m.end(), Kind.BLOCK)
            found.brk(ra)
            found.brk(rb)
        j += 1
    found.keep(c, lines[j - 1][1])  # a table is cut between rows only by sentences
    return j


def _markdown_inline(text: str, found: _Found, lo: int, hi: int) -> None:
    """The inline markup of Markdown in ``text[lo:hi]`` outside the blocks found so far."""
    s = found.working_copy(lo, hi)
    s = _code_spans(s, lo, found)
    s = _whole(_MD_HTML_COMMENT, s, lo, found)
    s = _whole(_MD_AUTOLINK, s, lo, found)
    s = _whole(_MD_HTML_RAW, s, lo, found)
    spans = []
    for m in _MD_HTML_TAG.finditer(s):
        block = m.group(1).lower() in _HTML_BLOCK_TAGS
        found.add(lo + m.start(), lo + m.end(), Kind.BLOCK if block else Kind.INLINE)
        spans.append(m.span())
    s = _blank(s, spans)
    spans = [m.span() for m in _MD_DISPLAY_MATH.finditer(s)]
    for a, b in spans:
        found.display(lo + a, lo + b)
    s = _blank(s, spans)
    s = _whole(_MD_MATH, s, lo, found)
    s = _whole(_MD_IMAGE, s, lo, found)
    s = _whole(_MD_FOOTNOTE_REF, s, lo, found)
    spans = []
    for m in _MD_LINK.finditer(s):
        close = m.start("close")
        spans += [(m.start(), m.start() + 1), (close, m.end())]
    for a, b in spans:
        found.add(lo + a, lo + b, Kind.INLINE)
    s = _blank(s, spans)
    s = _urls(s, lo, found)
    _delimiters(s, lo, found, "*_~")


def _code_spans(s: str, base: int, found: _Found) -> str:
    """Markdown code spans: a run of backticks up to the next run of the same length in the
    same paragraph; an unmatched run is literal."""
    runs = [m.span() for m in _MD_BACKTICKS.finditer(s)]
    spans = []
    i = 0
    while i < len(runs):
        a, b = runs[i]
        if a > 0 and s[a - 1] == "\\":
            i += 1
            continue
        for j in range(i + 1, len(runs)):
            c, d = runs[j]
            if _BLANK_LINE.search(s, b, c):
                break
            if d - c == b - a:
                spans.append((a, d))
                i = j
                break
        i += 1
    for a, b in spans:
        found.add(base + a, base + b, Kind.INLINE)
    return _blank(s, spans)


# -- reStructuredText ------------------------------------------------------------------------

_RST_EXPLICIT = re.compile(r"[ \t]*\.\.(?=[ \t]|\r?$)")
_RST_DIRECTIVE = re.compile(r"[ \t]*\.\.[ \t]+([A-Za-z0-9][\w:+.-]*?)[ \t]*::(?=[ \t]|\r?$)[ \t]*")
_RST_FOOTNOTE_DEF = re.compile(
    r"[ \t]*\.\.[ \t]+\[(?:#[\w-]*|\*|\d+|[A-Za-z][\w.-]*)\](?:[ \t]+|(?=\r?$))"
)
_RST_OPTION = re.compile(r"[ \t]+:[\w-]+:(?:[ \t]|\r?$)")
_RST_ADORNMENT = re.compile(r"([!-/:-@\[-`{-~])\1+[ \t\r]*$")
_RST_SIMPLE_TABLE = re.compile(r"[ \t]*=+(?:[ \t]+=+)+[ \t\r]*$")
_RST_GRID_BORDER = re.compile(r"[ \t]*\+(?:[-=:]+\+)+[ \t\r]*$")
_RST_BULLET = re.compile(r"[ \t]*[-*+•‣⁃](?:[ \t]+|(?=\r?$))")
_RST_ENUMERATED = re.compile(
    r"[ \t]*(?:(?:\d+|#|[A-Za-z]|[ivxlcdm]+|[IVXLCDM]+)[.)]|\((?:\d+|#|[A-Za-z]|[ivxlcdm]+)\))(?:[ \t]+|(?=\r?$))"
)
_RST_FIELD = re.compile(r"[ \t]*:(?![ :])(?:[^:\\\n]|\\.)+(?<! ):(?:[ \t]+|(?=\r?$))")
_RST_LINE_BLOCK = re.compile(r"[ \t]*\|(?:[ \t]+|(?=\r?$))")
_RST_DOCTEST = re.compile(r"[ \t]*>>>(?:[ \t]|\r?$)")
_RST_PIPE = re.compile(r"\|")
_RST_WORD = re.compile(r"\S+[ \t]*")

_RST_LITERAL = re.compile(
    r"``(?<![\w`\\]``)(?=\S)(?:[^`\\\n]|\\.|`(?!`)|\n(?![ \t\r]*\n))+?(?<=\S)``(?![\w`])"
)
_RST_ROLE = re.compile(
    r":(?P<role>[A-Za-z][\w:+.-]*):`(?P<body>(?:[^`\\\n]|\\.|\n(?![ \t\r]*\n))+)`"
    r"|`(?P<body2>(?:[^`\\\n]|\\.|\n(?![ \t\r]*\n))+)`:(?P<role2>[A-Za-z][\w:+.-]*):"
)
_RST_REFERENCE = re.compile(
    r"`(?P<body>(?:[^`\\\n<]|\\.|\n(?![ \t\r]*\n))*?)(?P<url>[ \t\n]*<[^<>`\n]*>)?`__?(?!\w)"
)
_RST_INLINE_TARGET = re.compile(r"_`(?P<body>[^`\n]+)`")
_RST_DEFAULT_ROLE = re.compile(
    r"`(?<![\w`]`)(?=\S)(?:[^`\\\n]|\\.|\n(?![ \t\r]*\n))+?(?<=\S)`(?![\w`])"
)
_RST_NOTE_REF = re.compile(r"\[(?:#[\w-]*|\*|\d+|[A-Za-z][\w.-]*)\]_(?!\w)")
_RST_SUBSTITUTION = re.compile(r"\|(?<![\w|]\|)(?=\S)[^|\n]+(?<=\S)\|(?:__?)?(?![\w|])")
_RST_SIMPLE_REF = re.compile(r"_(?<=\w_)_?(?![\w`])")

# Directives whose content is prose (admonitions, captions); every other one is markup.
_RST_PROSE_BODY = _words(
    "attention caution danger error hint important note tip warning admonition seealso "
    "topic sidebar rubric epigraph highlights pull-quote compound container deprecated "
    "versionadded versionchanged figure table only glossary centered hlist tab card "
    "dropdown todo"
)
# ... of which these take a prose argument on the directive line (a title, a first sentence).
_RST_PROSE_ARGUMENT = _words(
    "attention caution danger error hint important note tip warning admonition seealso "
    "topic sidebar rubric table tab card dropdown todo deprecated versionadded versionchanged"
)
_RST_VERSIONED = frozenset(["deprecated", "versionadded", "versionchanged"])
# Roles whose text is prose; the text of every other role (code, references, math) is markup.
_RST_PROSE_ROLES = _words(
    "emphasis strong abbr term dfn title-reference title t sub subscript sup superscript "
    "guilabel menuselection"
)


def _rst_block_end(text: str, lines: list[tuple[int, int]], i: int, indent: int) -> int:
    """The index after the last line from ``i`` on that is indented more than ``indent``
    (blank lines may be inside, not at the end)."""
    last = i - 1
    j = i
    while j < len(lines):
        a, b = lines[j]
        if not _is_blank(text, a, b):
            if _indent(text, a, b)[0] <= indent:
                break
            last = j
        j += 1
    return last + 1


def _rst(text: str, found: _Found) -> None:
    lines = _lines(text, 0, len(text))
    n = len(lines)
    i = 0
    in_para = False
    para_indent = 0
    para_start = -1  # the index of the current paragraph's first line
    literal = False  # the last paragraph ended with "::"
    prev_marker = False  # the previous line started with a list or field marker
    while i < n:
        a, b = lines[i]
        if _is_blank(text, a, b):
            in_para, i = False, i + 1
            continue
        width, c = _indent(text, a, b)
        if literal and not in_para and width > para_indent:
            j = _rst_block_end(text, lines, i, para_indent)
            found.add(a, lines[j - 1][1], Kind.BLOCK)
            found.keep(a, lines[j - 1][1])
            literal, i = False, j
            continue
        if not in_para:
            literal = False
        ch = text[c]
        if ch == "." and _RST_EXPLICIT.match(text, a, b):
            i = _rst_explicit(text, found, lines, i, width)
            in_para, literal = i < 0, False
            i = abs(i)
            if in_para:
                para_indent, para_start = width, i - 1
            continue
        end = b
        while end > c and text[end - 1] in " \t\r":
            end -= 1
        if end - c == 2 and text.startswith("::", c):  # the expanded form of a literal block marker
            found.add(c, end, Kind.BLOCK)
            in_para, literal, para_indent, i = True, True, width, i + 1
            continue
        if _RST_ADORNMENT.match(text, c, b) and end - c >= 2:
            if in_para and para_start == i - 1:  # a section title's underline
                found.add(c, b, Kind.BLOCK)
                in_para, literal, i = False, False, i + 1
                continue
            if (
                not in_para
                and i + 2 < n
                and text[lines[i + 2][0] : lines[i + 2][1]].strip() == text[c:end]
            ):  # an overline, a title, an underline
                found.add(c, b, Kind.BLOCK)
                found.add(lines[i + 2][0], lines[i + 2][1], Kind.BLOCK)
                i += 3
                continue
            if not in_para and end - c >= 4:  # a transition
                found.add(c, b, Kind.BLOCK)
                i += 1
                continue
        if (
            ch in "=+"
            and not in_para
            and (_RST_SIMPLE_TABLE.match(text, a, b) or _RST_GRID_BORDER.match(text, a, b))
        ):
            j = i
            while j < n and not _is_blank(text, *lines[j]):
                ja, jb = lines[j]
                if _RST_SIMPLE_TABLE.match(text, ja, jb) or _RST_GRID_BORDER.match(text, ja, jb):
                    found.add(ja, jb, Kind.BLOCK)
                else:
                    for m in _RST_PIPE.finditer(text, ja, jb):
                        found.add(m.start(), m.end(), Kind.BLOCK)
                    found.brk(ja)
                    found.brk(jb)
                j += 1
            found.keep(a, lines[j - 1][1])
            in_para, i = False, j
            continue
        if ch == ">" and not in_para and _RST_DOCTEST.match(text, a, b):
            j = i
            while j < n and not _is_blank(text, *lines[j]):
                j += 1
            found.add(a, lines[j - 1][1], Kind.BLOCK)
            found.keep(a, lines[j - 1][1])
            i = j
            continue
        marker = None
        if not in_para or prev_marker:
            marker = (
                _RST_BULLET.match(text, a, b)
                or _RST_ENUMERATED.match(text, a, b)
                or (ch == ":" and _RST_FIELD.match(text, a, b))
                or (ch == "|" and _RST_LINE_BLOCK.match(text, a, b))
            )
        elif ch in "-*+•" and _RST_BULLET.match(text, a, b):
            marker = _RST_BULLET.match(text, a, b)
        if marker:
            found.add(c, marker.end(), Kind.BLOCK)
            prev_marker = True
        else:
            prev_marker = False
        if not in_para:
            para_indent, para_start = width, i
        in_para = True
        literal = text.endswith("::", c, end)
        if literal:  # "text::" reads "text:"; "text ::" and a lone "::" read as nothing
            if end - 2 == c:
                found.add(c, end, Kind.BLOCK)
            elif text[end - 3] in " \t":
                found.add(end - 2, end, Kind.INLINE)
            else:
                found.add(end - 1, end, Kind.INLINE)
        i += 1
    _rst_inline(text, found)


def _rst_explicit(
    text: str, found: _Found, lines: list[tuple[int, int]], i: int, width: int
) -> int:
    """An explicit markup block at line ``i`` (a directive, comment, target, footnote):
    returns the next line's index, negated if the line continues as a prose paragraph."""
    a, b = lines[i]
    end_index = _rst_block_end(text, lines, i + 1, width)
    block_end = lines[end_index - 1][1]
    directive = _RST_DIRECTIVE.match(text, a, b)
    found.keep(a, block_end)  # a directive stays with its content
    if directive and directive.group(1).lower() in _RST_PROSE_BODY:
        name = directive.group(1).lower()
        found.add(a, directive.end(), Kind.BLOCK)
        arg_end = b
        if name in _RST_VERSIONED:
            m = _RST_WORD.match(text, directive.end(), b)
            arg_end = m.end() if m else directive.end()
            found.add(directive.end(), arg_end, Kind.BLOCK)
        elif name not in _RST_PROSE_ARGUMENT:
            found.add(directive.end(), b, Kind.BLOCK)
        j = i + 1
        while j < end_index and _RST_OPTION.match(text, *lines[j]):
            found.add(lines[j][0], lines[j][1], Kind.BLOCK)
            j += 1
        prose = not _is_blank(text, arg_end, b) and j == i + 1
        return -j if prose else j
    if footnote := _RST_FOOTNOTE_DEF.match(text, a, b):
        found.add(a, footnote.end(), Kind.BLOCK)
        return -(i + 1)
    # Any other directive, a comment, a hyperlink target, a substitution definition.
    found.add(a, block_end, Kind.BLOCK)
    return end_index


def _rst_inline(text: str, found: _Found) -> None:
    s = found.working_copy(0, len(text))
    s = _whole(_RST_LITERAL, s, 0, found)
    spans = []
    for m in _RST_ROLE.finditer(s):
        role = (m.group("role") or m.group("role2")).lower()
        body = "body" if m.group("body") is not None else "body2"
        if role in _RST_PROSE_ROLES:
            spans += [(m.start(), m.start(body)), (m.end(body), m.end())]
        else:
            spans.append(m.span())
    for a, b in spans:
        found.add(a, b, Kind.INLINE)
    s = _blank(s, spans)
    spans = []
    for m in _RST_REFERENCE.finditer(s):
        if m.group("body").strip():
            spans += [(m.start(), m.start() + 1), (m.end("body"), m.end())]
        else:
            spans.append(m.span())
    for m in _RST_INLINE_TARGET.finditer(s):
        spans += [(m.start(), m.start() + 2), (m.end() - 1, m.end())]
    spans.sort()
    for a, b in spans:
        found.add(a, b, Kind.INLINE)
    s = _blank(s, spans)
    s = _whole(_RST_DEFAULT_ROLE, s, 0, found)
    s = _whole(_RST_NOTE_REF, s, 0, found)
    s = _whole(_RST_SUBSTITUTION, s, 0, found)
    s = _urls(s, 0, found)
    s = _whole(_RST_SIMPLE_REF, s, 0, found)
    _delimiters(s, 0, found, "*")


# -- LaTeX -----------------------------------------------------------------------------------

_TEX_TOKEN = re.compile(r"\\(?:[A-Za-z@]+\*?|.)|[%${}&~]", re.S)
_TEX_GROUPING = re.compile(r"\\.|[{}\]]", re.S)
_TEX_OPTION = re.compile(r"[ \t]*\[")
_TEX_INLINE_MATH = re.compile(r"(?:[^\\$]|\\.)*\$", re.S)
_TEX_DISPLAY_MATH = re.compile(r"(?:[^\\$]|\\.|\$(?!\$))*\$\$", re.S)
_TEX_LABEL = re.compile(r"[ \t]*\[")
_TEX_ENV_NAME = re.compile(r"[ \t]*\{([^{}\n]*)\}")
_TEX_BEGIN_DOCUMENT = re.compile(r"\\begin[ \t]*\{document\}")
_TEX_END_DOCUMENT = re.compile(r"\\end[ \t]*\{document\}")
_TEX_SPACE = re.compile(r"[ \t]*(?:\n[ \t]*)?")

# Environments whose content is not prose, skipped to their \end without parsing.
_TEX_VERBATIM = _words(
    "verbatim verbatim* Verbatim Verbatim* BVerbatim LVerbatim spverbatim lstlisting minted "
    "comment filecontents filecontents* alltt tikzpicture pgfpicture forest tikzcd "
    "algorithmic algorithmic* algorithm2e thebibliography pycode luacode"
)
_TEX_MATH = _words(
    "equation equation* align align* alignat alignat* flalign flalign* gather gather* "
    "multline multline* eqnarray eqnarray* displaymath math dmath dmath* dgroup dgroup*"
)
_TEX_TABULAR = _words("tabular tabular* tabularx tabulary longtable supertabular xltabular tblr")
# Sectioning and captions: a paragraph boundary whose (last) argument is prose.
_TEX_TITLES = _words(
    "part chapter section subsection subsubsection paragraph subparagraph caption subcaption "
    "title subtitle addsec minisec frametitle framesubtitle"
)
# Commands whose first N braced arguments are not prose (what follows them is parsed as usual).
_TEX_MASKED = {
    **dict.fromkeys(
        _words(
            "label ref eqref pageref autoref cref Cref nameref vref cite citep citet citealp "
            "citealt citeauthor citeyear parencite textcite autocite footcite nocite citenum url "
            "nolinkurl path texttt footnote footnotetext ensuremath si num ang index gls Gls "
            "glspl acrshort acrlong acrfull ac acp stepcounter hspace color pagecolor linespread "
            "hypersetup lstset thispagestyle cline href textcolor colorbox bibitem foreignlanguage "
            "scalebox raisebox"
        ),
        1,
    ),
    **dict.fromkeys(
        _words(
            "SI qty crefrange setlength addtolength setcounter addtocounter fontsize rule "
            "numberwithin DeclareMathOperator newcommand renewcommand providecommand newtheorem "
            "multicolumn multirow resizebox mintinline"
        ),
        2,
    ),
    **dict.fromkeys(_words("newenvironment renewenvironment"), 3),
    **dict.fromkeys(
        _words(
            "includegraphics input include bibliography bibliographystyle addbibresource "
            "usepackage documentclass RequirePackage graphicspath vspace pagestyle "
            "lstinputlisting"
        ),
        1,
    ),
    "inputminted": 2,
}
# Commands that are paragraph boundaries (with any arguments in _TEX_MASKED).
_TEX_BREAKS = _words(
    "par newpage clearpage cleardoublepage pagebreak maketitle tableofcontents listoffigures "
    "listoftables printbibliography appendix bigskip medskip smallskip centering raggedright "
    "raggedleft hline toprule midrule bottomrule frontmatter mainmatter backmatter "
    "includegraphics input include bibliography bibliographystyle addbibresource usepackage "
    "documentclass RequirePackage graphicspath vspace pagestyle lstinputlisting inputminted "
    "newcommand renewcommand providecommand newtheorem newenvironment renewenvironment "
    "DeclareMathOperator setlength setcounter"
)


def _tex_group_end(text: str, pos: int, hi: int) -> int:
    """The offset after the group opening at ``text[pos]`` (``{`` or ``[``), or ``hi``; braces
    nest, and a ``]`` inside braces does not close a ``[``."""
    closer = "}" if text[pos] == "{" else "]"
    depth = 0
    for m in _TEX_GROUPING.finditer(text, pos + 1, hi):
        t = m.group()
        if t == "{":
            depth += 1
        elif t == "}":
            if depth == 0:
                return m.end() if closer == "}" else m.start()
            depth -= 1
        elif t == closer and depth == 0:
            return m.end()
    return hi


def _tex_options(text: str, pos: int, hi: int) -> int:
    """The offset after the ``[...]`` options right after a command ending at ``pos``."""
    while m := _TEX_OPTION.match(text, pos, hi):
        pos = _tex_group_end(text, m.end() - 1, hi)
    return pos


def _tex_arguments(text: str, pos: int, hi: int, count: int) -> int:
    """The offset after ``count`` mandatory arguments (and any options between them)."""
    for _ in range(count):
        pos = _tex_options(text, pos, hi)
        start = _TEX_SPACE.match(text, pos, hi).end()
        if start >= hi:
            return pos
        if text[start] == "{":
            pos = _tex_group_end(text, start, hi)
        elif text[start] == "\\":
            m = _TEX_TOKEN.match(text, start, hi)
            pos = m.end() if m else start + 1
        elif text[start] in "}%":
            return pos
        else:
            pos = start + 1
    return _tex_options(text, pos, hi)


def _latex(text: str, found: _Found) -> None:
    lo, hi = 0, len(text)
    if begin := _TEX_BEGIN_DOCUMENT.search(text):
        found.add(0, begin.end(), Kind.BLOCK)
        lo = begin.end()
    if end := _TEX_END_DOCUMENT.search(text, lo):
        found.add(end.start(), len(text), Kind.BLOCK)
        hi = end.start()
    groups: list[Kind] = []  # how each open "{" closes
    envs: list[tuple[str, int]] = []  # open environments and where they begin
    pos = lo
    while m := _TEX_TOKEN.search(text, pos, hi):
        t, s = m.group(), m.start()
        pos = m.end()
        if t == "%":
            eol = text.find("\n", s, hi)
            pos = hi if eol < 0 else eol
            found.add(s, pos, Kind.INLINE)
        elif t == "$":
            display = text.startswith("$$", s)
            para = _BLANK_LINE.search(text, s, hi)
            limit = para.start() if para else hi
            close = (_TEX_DISPLAY_MATH if display else _TEX_INLINE_MATH).match(
                text, s + (2 if display else 1), limit
            )
            pos = close.end() if close else s + (2 if display else 1)
            if display:
                found.display(s, pos)
            else:
                found.add(s, pos, Kind.INLINE)
        elif t == "{":
            groups.append(Kind.INLINE)
            found.add(s, pos, Kind.INLINE)
        elif t == "}":
            found.add(s, pos, groups.pop() if groups else Kind.INLINE)
        elif t == "&":
            found.add(s, pos, Kind.BLOCK if envs and envs[-1][0] in _TEX_TABULAR else Kind.INLINE)
        elif t == "~":
            found.add(s, pos, Kind.BLANK)
        elif len(t) == 2 and not t[1].isalpha():
            pos = _tex_symbol(text, found, s, t[1], hi, bool(envs and envs[-1][0] in _TEX_TABULAR))
        else:
            pos = _tex_command(text, found, s, pos, hi, t[1:].rstrip("*"), groups, envs)
    _urls(found.working_copy(0, len(text)), 0, found)


def _tex_symbol(text: str, found: _Found, s: int, ch: str, hi: int, in_table: bool) -> int:
    """A control symbol ``\\<ch>`` at ``s``; returns where scanning continues."""
    if ch in "([":
        close = text.find("\\)" if ch == "(" else "\\]", s + 2, hi)
        end = hi if close < 0 else close + 2
        if ch == "[":
            found.display(s, end)
        else:
            found.add(s, end, Kind.INLINE)
        return end
    if ch == "\\":
        end = _tex_options(text, s + 2 + text.startswith("*", s + 2), hi)
        found.add(s, end, Kind.BLOCK if in_table else Kind.INLINE)
        return end
    if ch in "%&$#_{}":  # an escaped character: it is prose, the backslash is not
        found.add(s, s + 1, Kind.INLINE)
        return s + 2
    found.add(s, s + 2, Kind.BLANK if ch in " \t\n,;:!>" else Kind.INLINE)
    return s + 2


def _tex_command(
    text: str,
    found: _Found,
    s: int,
    pos: int,
    hi: int,
    name: str,
    groups: list[Kind],
    envs: list[tuple[str, int]],
) -> int:
    """A control word ``\\name`` from ``s`` to ``pos``; returns where scanning continues."""
    if name in ("begin", "end"):
        env = _TEX_ENV_NAME.match(text, pos, hi)
        if env is None:
            found.add(s, pos, Kind.INLINE)
            return pos
        env_name, pos = env.group(1).strip(), env.end()
        if name == "end":
            found.add(s, pos, Kind.BLOCK)
            for k in range(len(envs) - 1, -1, -1):
                if envs[k][0] == env_name:
                    found.keep(envs[k][1], pos)
                    del envs[k:]
                    break
            return pos
        if env_name in _TEX_VERBATIM or env_name in _TEX_MATH:
            close = re.compile(r"\\end[ \t]*\{" + re.escape(env_name) + r"\}").search(text, pos, hi)
            end = hi if close is None else close.end()
            if env_name in _TEX_VERBATIM:
                found.add(s, end, Kind.BLOCK)
                found.keep(s, end)
            else:
                found.display(s, end)
            return end
        while pos < hi and text[pos] in "[{":
            pos = _tex_group_end(text, pos, hi)
        found.add(s, pos, Kind.BLOCK)
        envs.append((env_name, s))
        return pos
    if name in ("verb", "lstinline") and pos < hi:
        delimiter = "}" if text[pos] == "{" else text[pos]
        close = text.find(delimiter, pos + 1, hi)
        end = hi if close < 0 else close + 1
        found.add(s, end, Kind.INLINE)
        return end
    if name == "iffalse":
        close = re.compile(r"\\fi(?![A-Za-z])").search(text, pos, hi)
        end = hi if close is None else close.end()
        found.add(s, end, Kind.BLOCK)
        return end
    if name == "item":
        found.add(s, pos, Kind.BLOCK)
        if label := _TEX_LABEL.match(text, pos, hi):
            end = _tex_group_end(text, label.end() - 1, hi)
            found.add(pos, label.end(), Kind.BLOCK)
            found.add(end - 1, end, Kind.BLOCK)
            return end
        return pos
    if name in _TEX_TITLES:
        pos = _tex_options(text, pos, hi)
        brace = _TEX_SPACE.match(text, pos, hi).end()
        if brace < hi and text[brace] == "{":
            found.add(s, brace + 1, Kind.BLOCK)
            groups.append(Kind.BLOCK)
            return brace + 1
        found.add(s, pos, Kind.BLOCK)
        return pos
    kind = Kind.BLOCK if name in _TEX_BREAKS else Kind.INLINE
    if name in _TEX_MASKED:
        end = _tex_arguments(text, pos, hi, _TEX_MASKED[name])
    elif name in ("def", "gdef", "edef", "xdef", "let"):
        brace = text.find("{", pos, hi) if name != "let" else -1
        end = _tex_group_end(text, brace, hi) if brace >= 0 else _tex_arguments(text, pos, hi, 2)
        kind = Kind.BLOCK
    else:  # the name and its options; a braced argument is prose (its braces are not)
        end = _tex_options(text, pos, hi)
    found.add(s, end, kind)
    return end


# -- git commit messages ---------------------------------------------------------------------

_GIT_COMMENT = re.compile(r"#")
_GIT_SCISSORS = re.compile(r"^#[ \t]*-+[ \t]*>8[ \t]*-+[ \t\r]*$|^diff --git ", re.M)
_GIT_TRAILER = re.compile(r"([A-Za-z0-9][\w-]*):[ \t]+\S|\(cherry picked from commit [0-9a-f]+\)")
# Trailer keys that make a last paragraph of "Key: value" lines a trailer block (so does any
# hyphenated key, "Reviewed-by"); a lone "Note: ..." stays prose.
_GIT_TRAILER_KEYS = _words("fixes closes resolves refs bug link cc see-also change-id")
_GIT_PREFIX = re.compile(r"[A-Za-z]+(?:\([^)\n]*\))?!?:[ \t]+")


def _git_commit(text: str, found: _Found) -> None:
    hi = len(text)
    if scissors := _GIT_SCISSORS.search(text):
        hi = scissors.start()
        found.add(hi, len(text), Kind.BLOCK)
        found.keep(hi, len(text))
    lines = [(a, b) for a, b in _lines(text, 0, hi) if not text.startswith("#", a)]
    subject = next(((a, b) for a, b in lines if not _is_blank(text, a, b)), None)
    if subject is not None:
        a, b = subject
        if prefix := _GIT_PREFIX.match(text, a, b):
            found.add(a, prefix.end(), Kind.INLINE)
        found.brk(b)
    # The trailer block: the last paragraph, if every line of it is a trailer.
    paragraphs: list[list[tuple[int, int]]] = [[]]
    for a, b in lines:
        if not _is_blank(text, a, b):
            paragraphs[-1].append((a, b))
        elif paragraphs[-1]:
            paragraphs.append([])
    last = paragraphs[-1] or (paragraphs[-2] if len(paragraphs) > 1 else [])
    trailers = [_GIT_TRAILER.match(text, a, b) for a, b in last]
    if (
        last
        and last[0] != subject
        and all(trailers)
        and any(m.group(1) is None or "-" in m.group(1) or m.group(1).lower() in _GIT_TRAILER_KEYS for m in trailers)
    ):
        for a, b in last:
            found.add(a, b, Kind.BLOCK)
    _markdown_blocks(text, found, 0, hi, front_matter=False, comment=_GIT_COMMENT, nested=False)
    _markdown_inline(text, found, 0, hi)


_SCANNERS: dict[str, Callable[[str, _Found], None]] = {
    "markdown": _markdown,
    "restructuredtext": _rst,
    "latex": _latex,
    "tex": _latex,
    "git-commit": _git_commit,
}
LANGUAGES: tuple[str, ...] = (*_SCANNERS, "plaintext")
