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
  ``(line_count, 0)`` to select "everything").

The codec is given lines *without* their terminators and characters already
clamped, so none of its own clamping paths run.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from typing import overload

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec, ServerTextPosition

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class InvalidRange(ValueError):
    """An LSP range whose end comes before its start."""


class LineIndex:
    """A text and where its lines start; kept in step with changes by ``apply_change``."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._starts = [0, *(m.end() for m in _LINE_BREAK.finditer(text))]
        self._lines = _Lines(self)

    @property
    def text(self) -> str:
        return self._text

    @property
    def line_count(self) -> int:
        return len(self._starts)

    def line_text(self, line: int) -> str:
        """Line ``line`` without its terminator."""
        start = self._starts[line]
        stop = self._starts[line + 1] if line + 1 < len(self._starts) else len(self._text)
        # A line holds at most one terminator, at its end.
        return self._text[start:stop].rstrip("\r\n")

    # -- conversions -------------------------------------------------------------

    def offset_at(self, position: types.Position, codec: PositionCodec) -> int:
        """Code-point offset of an LSP ``position`` given in ``codec``'s units."""
        if position.line >= len(self._starts):
            return len(self._text)
        line = self.line_text(position.line)
        character = min(position.character, codec.client_num_units(line))
        server = codec.position_from_client_units(
            self._lines, types.Position(line=position.line, character=character)
        )
        return self._starts[position.line] + server.character

    def position_at(self, offset: int, codec: PositionCodec) -> types.Position:
        """LSP position, in ``codec``'s units, of code-point ``offset`` (clamped to the text).

        An offset inside a ``\\r\\n`` (a token may end there) maps to the end of its line.
        """
        offset = min(max(offset, 0), len(self._text))
        line = bisect_right(self._starts, offset) - 1
        column = min(offset - self._starts[line], len(self.line_text(line)))
        return codec.position_to_client_units(self._lines, ServerTextPosition(line, column))

    def offsets_of(self, range: types.Range, codec: PositionCodec) -> tuple[int, int]:
        """``(start, end)`` code-point offsets of an LSP range; ``InvalidRange`` if reversed."""
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

        Line starts before ``start`` and after ``end`` are kept (those after shift);
        only the changed stretch and one character either side are scanned, which
        is what decides whether a ``\\r`` and a ``\\n`` meet or part.
        """
        if not 0 <= start <= end <= len(self._text):
            raise ValueError(f"change [{start}, {end}) outside the text (0..{len(self._text)})")
        text = self._text[:start] + new_text + self._text[end:]
        delta = len(new_text) - (end - start)
        new_end = start + len(new_text)
        scan_from = max(start - 1, 0)
        scanned = [
            scan_from + m.end()
            for m in _LINE_BREAK.finditer(text[scan_from : new_end + 1])
            if scan_from + m.end() <= new_end
        ]
        # Line 0 always starts at 0; other starts at or after ``start`` may move.
        before = self._starts[: max(bisect_right(self._starts, start - 1), 1)]
        after = self._starts[bisect_right(self._starts, end) :]
        self._starts = [*before, *scanned, *(s + delta for s in after)]
        self._text = text


class _Lines(Sequence[str]):
    """The index's lines without terminators, built one at a time as the codec asks."""

    def __init__(self, index: LineIndex) -> None:
        self._index = index

    def __len__(self) -> int:
        return self._index.line_count

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._index.line_text(i)
