"""LSP positions (line, character in the negotiated encoding) to code-point offsets and back.

LSP counts ``character`` in UTF-16 code units unless the client and server
negotiated UTF-8 or UTF-32 (``general.positionEncodings``). The unit counting
is pygls's ``PositionCodec``; this module only finds lines. It follows the
spec where pygls's own ``TextDocument`` does not:

* lines end at ``\\n``, ``\\r\\n`` or ``\\r`` only (``str.splitlines`` also splits
  at ``\\v``, ``\\f``, U+2028, ... which the client does not);
* a ``character`` past the end of its line means the end of the line, not one
  before it, and never the line terminator;
* a ``line`` past the last line means the end of the document (clients send
  ``(line_count, 0)`` to select "everything");
* a ``character`` that falls inside one character (between the two UTF-16 halves
  of an emoji, inside a UTF-8 multi-byte sequence) is refused with ``InvalidRange``:
  rounding it would silently make the server's text differ from the client's.

pygls's ``PositionCodec`` says which encoding was negotiated; the counting is
done here (``code_units``, ``column_at``) by encoding the line in C instead of
pygls's loop over characters in Python, which cost ~3 ms a position on a
1,000-character line and made a replace-all of 658 changes hold the event loop
for 2.2 s. Both give the same answers (tested against the codec).

The text is kept in chunks of whole lines (``CHUNK_CHARS`` each, more if one
line is longer), each with its line starts relative to itself, as ``store``
keeps tokens: an edit re-scans only the chunks it touches, and the per-chunk
tables (one entry per chunk) are rebuilt from the edited chunk on with
``itertools.accumulate``. So a keystroke costs O(change + chunk + line) plus a
C-speed O(chunks) rather than O(length); the whole text is joined only when
someone reads ``text`` (and kept until the next change).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from itertools import accumulate

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

_LINE_BREAK = re.compile(r"\r\n|\r|\n")

# Target characters per chunk. A keystroke mid-document at 10M characters (54-
# character lines): 4096 and 8192 ~100 us, within noise of each other; 1024 and
# 32768 ~220 us (the first pays for longer chunk tables, the second for
# re-scanning a longer chunk).
CHUNK_CHARS = 4096


class InvalidRange(ValueError):
    """An LSP range whose end comes before its start, or a position inside a character."""


_UNIT_BYTES = {  # the negotiated encoding -> (codec for str.encode, bytes per code unit)
    types.PositionEncodingKind.Utf8: ("utf-8", 1),
    types.PositionEncodingKind.Utf16: ("utf-16-le", 2),
    types.PositionEncodingKind.Utf32: ("utf-32-le", 4),
}


def _unit_bytes(codec: PositionCodec) -> tuple[str, int]:
    return _UNIT_BYTES.get(codec.encoding, _UNIT_BYTES[types.PositionEncodingKind.Utf16])  # as pygls defaults


def code_units(text: str, codec: PositionCodec) -> int:
    """How many of the client's code units ``text`` takes (lone surrogates count as one)."""
    if text.isascii():
        return len(text)
    name, size = _unit_bytes(codec)
    return len(text.encode(name, "surrogatepass")) // size


def column_at(line: str, units: int, codec: PositionCodec) -> int:
    """The code-point column ``units`` client code units into ``line`` (0 <= units <=
    ``code_units(line)``); a unit inside a character rounds up to after it.

    A binary search over prefixes (each counted in C) rather than decoding the
    prefix's bytes: two lone surrogate halves side by side are two code points
    here, but their bytes would decode to one."""
    if line.isascii():
        return units
    return bisect_left(range(len(line) + 1), units, key=lambda column: code_units(line[:column], codec))


class LineIndex:
    """A text and where its lines start; kept in step with changes by ``apply_change``.

    ``chunk_chars`` is the storage chunk size (``CHUNK_CHARS``); tests make it tiny.
    """

    def __init__(self, text: str, chunk_chars: int = CHUNK_CHARS) -> None:
        self._chunk_chars = max(chunk_chars, 1)
        self._chunks: list[str] = []  # the text, cut only at line starts
        self._starts: list[list[int]] = []  # per chunk: its line starts, from 0
        self._sizes: tuple[list[int], list[int]] = ([], [])  # per chunk: characters, lines
        # Where each chunk starts (characters, lines), plus the totals at the end.
        self._chunk_char = [0]
        self._chunk_line = [0]
        self._set_chunks(0, 0, self._split(text, is_end=True))
        self._text: str | None = text

    @property
    def text(self) -> str:
        """The whole text (joined on first use after a change: O(length), then cached)."""
        if self._text is None:
            self._text = "".join(self._chunks)
        return self._text

    def contains(self, needle: str) -> bool:
        """Whether ``needle`` (which holds no line break) is in the text, without joining it:
        chunks are cut at line starts, so no such needle straddles two."""
        if self._text is not None:
            return needle in self._text
        return any(needle in chunk for chunk in self._chunks)

    def chunks(self) -> tuple[list[int], list[str]]:
        """The text in chunks: where each starts, and its text. Chunks are cut at line starts,
        and one that no change touched stays the same string (``ignores.ChunkIgnores`` scans
        only new ones). Copies of the lists: C-speed, O(chunks)."""
        return self._chunk_char[:-1], self._chunks[:]

    def __len__(self) -> int:
        """Characters (code points), without joining the text."""
        return self._chunk_char[-1]

    @property
    def line_count(self) -> int:
        return self._chunk_line[-1]

    def line_text(self, line: int) -> str:
        """Line ``line`` without its terminator (a negative ``line`` counts from the end)."""
        k, start, stop = self._line_span(line)
        # A line holds at most one terminator, at its end.
        return self._chunks[k][start:stop].rstrip("\r\n")

    # -- conversions -------------------------------------------------------------

    def offset_at(self, position: types.Position, codec: PositionCodec) -> int:
        """Code-point offset of an LSP ``position`` given in ``codec``'s units.

        ``InvalidRange`` if ``position.character`` falls inside a character.
        """
        if position.line >= self.line_count:
            return self._chunk_char[-1]
        k, start, stop = self._line_span(position.line)
        line = self._chunks[k][start:stop].rstrip("\r\n")
        character = max(min(position.character, code_units(line, codec)), 0)
        column = column_at(line, character, codec)
        # A unit inside a character rounds up to after it; the client meant something
        # this text does not have. (ASCII has one unit a character.)
        if not line.isascii() and code_units(line[:column], codec) != character:
            units = getattr(codec.encoding, "value", codec.encoding)
            raise InvalidRange(
                f"line {position.line}, character {character} falls inside "
                f"{line[column - 1]!r} ({units} code units)"
            )
        return self._chunk_char[k] + start + column

    def position_at(self, offset: int, codec: PositionCodec) -> types.Position:
        """LSP position, in ``codec``'s units, of code-point ``offset`` (clamped to the text).

        An offset inside a ``\\r\\n`` (a token may end there) maps to the end of its line.
        """
        offset = min(max(offset, 0), self._chunk_char[-1])
        k = self._chunk_at(offset)
        local = bisect_right(self._starts[k], offset - self._chunk_char[k]) - 1
        line = self._chunk_line[k] + local
        text = self.line_text(line)
        column = min(offset - self._chunk_char[k] - self._starts[k][local], len(text))
        return types.Position(line=line, character=code_units(text[:column], codec))

    def lines_at(self, offsets: Iterable[int]) -> list[tuple[int, int]]:
        """``(line, code-point column)`` of each code-point offset (clamped to the text), in one
        walk over the chunks when the offsets ascend: a long document's diagnostics ask it for
        every section's start on every push (``position_at`` also counts the client's units)."""
        chunk_char, chunk_line, line_starts = self._chunk_char, self._chunk_line, self._starts
        end, last = chunk_char[-1], len(self._chunks) - 1
        out = []
        k = 0
        for offset in offsets:
            offset = 0 if offset < 0 else end if offset > end else offset
            if offset < chunk_char[k]:  # (not ascending: look it up)
                k = self._chunk_at(offset)
            while k < last and chunk_char[k + 1] <= offset:
                k += 1
            local_offset = offset - chunk_char[k]
            starts = line_starts[k]
            local = bisect_right(starts, local_offset) - 1
            out.append((chunk_line[k] + local, local_offset - starts[local]))
        return out

    def line_prefix(self, offset: int) -> str:
        """The text from the start of code-point ``offset``'s line up to it (clamped to the text)."""
        offset = min(max(offset, 0), self._chunk_char[-1])
        k = self._chunk_at(offset)
        local_offset = offset - self._chunk_char[k]
        starts = self._starts[k]
        return self._chunks[k][starts[bisect_right(starts, local_offset) - 1] : local_offset]

    def offsets_of(self, range: types.Range, codec: PositionCodec) -> tuple[int, int]:
        """``(start, end)`` code-point offsets of an LSP range; ``InvalidRange`` if reversed
        or if either end falls inside a character."""
        start = self.offset_at(range.start, codec)
        end = self.offset_at(range.end, codec)
        if end < start:
            raise InvalidRange(f"range end {range.end} before its start {range.start}")
        return start, end

    def range_of(self, start: int, end: int, codec: PositionCodec) -> types.Range:
        """LSP range, in ``codec``'s units, of code points ``[start, end)`` (e.g. a diagnostic)."""
        return types.Range(start=self.position_at(start, codec), end=self.position_at(end, codec))

    # -- keeping in step ---------------------------------------------------------

    def apply_change(self, start: int, end: int, new_text: str) -> None:
        """Replace code points ``[start, end)`` by ``new_text``.

        Only the chunks holding the character before ``start`` and the character
        at ``end`` are re-scanned (with ``new_text``): that one character either
        side is what decides whether a ``\\r`` and a ``\\n`` meet or part, and
        both are kept, so the region's edges stay line starts. O(chunk + change).
        """
        n = self._chunk_char[-1]
        if not 0 <= start <= end <= n:
            raise ValueError(f"change [{start}, {end}) outside the text (0..{n})")
        k0 = self._chunk_at(max(start - 1, 0))
        k1 = self._chunk_at(end)
        # Chunks strictly between k0 and k1 are deleted whole: never copied.
        head = self._chunks[k0][: start - self._chunk_char[k0]]
        region = head + new_text + self._chunks[k1][end - self._chunk_char[k1] :]
        # Keep chunks from dwindling: a small region absorbs a neighbour.
        if len(region) < self._chunk_chars // 4 and len(self._chunks) > k1 - k0 + 1:
            if k1 + 1 < len(self._chunks):
                k1 += 1
                region += self._chunks[k1]
            else:
                k0 -= 1
                region = self._chunks[k0] + region
        self._set_chunks(k0, k1 + 1, self._split(region, is_end=k1 + 1 == len(self._chunks)))
        self._text = None

    # -- chunks ------------------------------------------------------------------

    def _split(self, text: str, *, is_end: bool) -> list[tuple[str, list[int]]]:
        """``text`` (starting at a line start) as chunks of whole lines, with their line starts.

        Unless ``text`` runs to the end of the document it ends with a terminator,
        and the line starting after it belongs to the next chunk; at the end, a
        final terminator starts one more (empty) line.
        """
        chunks = []
        begin = 0
        while True:
            # Cut at the first line start at least a chunk's length on (searching
            # from inside a \r\n still finds its end), never at the very end.
            found = None
            if len(text) - begin > self._chunk_chars:
                found = _LINE_BREAK.search(text, begin + self._chunk_chars - 1)
            cut = found.end() if found is not None and found.end() < len(text) else len(text)
            chunk = text[begin:cut]
            starts = [0, *[m.end() for m in _LINE_BREAK.finditer(chunk)]]
            if cut < len(text) or not is_end:
                starts.pop()  # == len(chunk): the next chunk's first line
            chunks.append((chunk, starts))
            if cut == len(text):
                return chunks
            begin = cut

    def _set_chunks(self, k0: int, k1: int, chunks: list[tuple[str, list[int]]]) -> None:
        """Replace chunks ``[k0, k1)`` and rebuild the start tables from ``k0`` on.

        C-speed, but O(chunks after ``k0``): typing at the end is cheapest.
        """
        self._chunks[k0:k1] = [text for text, _ in chunks]
        self._starts[k0:k1] = [starts for _, starts in chunks]
        chars, lines = self._sizes
        chars[k0:k1] = [len(text) for text, _ in chunks]
        lines[k0:k1] = [len(starts) for _, starts in chunks]
        self._chunk_char[k0:] = accumulate(chars[k0:], initial=self._chunk_char[k0])
        self._chunk_line[k0:] = accumulate(lines[k0:], initial=self._chunk_line[k0])

    def _chunk_at(self, offset: int) -> int:
        """The chunk holding character ``offset`` (the last chunk for the end)."""
        return min(bisect_right(self._chunk_char, offset) - 1, len(self._chunks) - 1)

    def _line_span(self, line: int) -> tuple[int, int, int]:
        """(chunk, start, stop) of line ``line`` within its chunk, terminator included."""
        if line < 0:
            line += self.line_count
        if not 0 <= line < self.line_count:
            raise IndexError(f"line {line} out of range ({self.line_count} lines)")
        k = bisect_right(self._chunk_line, line) - 1
        starts = self._starts[k]
        local = line - self._chunk_line[k]
        stop = starts[local + 1] if local + 1 < len(starts) else len(self._chunks[k])
        return k, starts[local], stop
