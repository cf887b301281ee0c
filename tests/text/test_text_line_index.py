"""The chunked ``LineIndex`` equals the flat one it replaced, after any sequence of edits.

``FlatLineIndex`` below is the earlier implementation (the whole text as one
``str``, a flat list of line starts, every edit O(length)), kept as the
reference. Chunk sizes are tiny so that edits cross, merge and split chunks and
land on ``\\r`` | ``\\n`` pairs at chunk edges. Every query is compared in UTF-8,
UTF-16 and UTF-32 after every edit; the one intended difference is that the
chunked index refuses a position inside a character (issue 16), which the
flat one rounded up.
"""

from __future__ import annotations

from bisect import bisect_right

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol.types import Position, PositionEncodingKind, Range
from pygls.workspace.position_codec import PositionCodec, ServerTextPosition

from vqlsp.text.positions import _LINE_BREAK, InvalidRange, LineIndex

CODECS = [PositionCodec(kind) for kind in PositionEncodingKind]

# Heavy on line terminators and on characters of 2, 3 and 4 UTF-8 bytes / 2 UTF-16 units.
PIECES = [
    "a",
    "bc",
    " ",
    "\r",
    "\n",
    "\r\n",
    "\n\r",
    "\r\r",
    "😋",
    "👨\u200d👩",
    "é",
    "日",
    "\u2028",
    "\x0b",
]


def pieces(max_size: int) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(PIECES), max_size=max_size).map("".join)


class FlatLineIndex:
    """The reference: the text as one ``str`` and every line start in one list."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0, *(m.end() for m in _LINE_BREAK.finditer(text))]

    @property
    def line_count(self) -> int:
        return len(self.starts)

    def line_text(self, line: int) -> str:
        start = self.starts[line]
        stop = self.starts[line + 1] if line + 1 < len(self.starts) else len(self.text)
        return self.text[start:stop].rstrip("\r\n")

    def offset_at(self, position: Position, codec: PositionCodec) -> int:
        if position.line >= len(self.starts):
            return len(self.text)
        line = self.line_text(position.line)
        character = min(position.character, codec.client_num_units(line))
        server = codec.position_from_client_units([line], Position(line=0, character=character))
        return self.starts[position.line] + server.character

    def position_at(self, offset: int, codec: PositionCodec) -> Position:
        offset = min(max(offset, 0), len(self.text))
        line = bisect_right(self.starts, offset) - 1
        column = min(offset - self.starts[line], len(self.line_text(line)))
        client = codec.position_to_client_units(
            [self.line_text(line)], ServerTextPosition(0, column)
        )
        return Position(line=line, character=client.character)

    def apply_change(self, start: int, end: int, new_text: str) -> None:
        text = self.text[:start] + new_text + self.text[end:]
        delta = len(new_text) - (end - start)
        new_end = start + len(new_text)
        scan_from = max(start - 1, 0)
        scanned = [
            scan_from + m.end()
            for m in _LINE_BREAK.finditer(text[scan_from : new_end + 1])
            if scan_from + m.end() <= new_end
        ]
        before = self.starts[: max(bisect_right(self.starts, start - 1), 1)]
        after = self.starts[bisect_right(self.starts, end) :]
        self.starts = [*before, *scanned, *(s + delta for s in after)]
        self.text = text


def inside_a_character(line: str, character: int, codec: PositionCodec) -> bool:
    """Whether ``character`` units into ``line`` fall between a character's units (an oracle)."""
    if character > codec.client_num_units(line):
        return False  # past the end: clamped, not refused
    return character not in {codec.client_num_units(line[:i]) for i in range(len(line) + 1)}


def assert_same(index: LineIndex, flat: FlatLineIndex) -> None:
    assert index.text == flat.text
    assert index.line_count == flat.line_count
    lines = [flat.line_text(i) for i in range(flat.line_count)]
    assert [index.line_text(i) for i in range(index.line_count)] == lines
    assert index.line_text(-1) == lines[-1]
    offsets = range(-1, len(flat.text) + 2)
    at = [bisect_right(flat.starts, min(max(offset, 0), len(flat.text))) - 1 for offset in offsets]
    expected = [(line, min(max(offset, 0), len(flat.text)) - flat.starts[line]) for offset, line in zip(offsets, at)]
    assert index.lines_at(offsets) == expected
    assert index.lines_at(reversed(offsets)) == expected[::-1]  # (any order)
    assert [index.line_prefix(offset) for offset in offsets] == [
        flat.text[flat.starts[line] : flat.starts[line] + column] for line, column in expected]
    for codec in CODECS:
        for offset in range(-1, len(flat.text) + 2):
            assert index.position_at(offset, codec) == flat.position_at(offset, codec)
        for number, line in enumerate([*lines, "", ""]):
            for character in range(codec.client_num_units(line) + 2):
                position = Position(line=number, character=character)
                if number < len(lines) and inside_a_character(line, character, codec):
                    with pytest.raises(InvalidRange, match=f"line {number}, character {character}"):
                        index.offset_at(position, codec)
                else:
                    assert index.offset_at(position, codec) == flat.offset_at(position, codec)
        start, end = sorted((len(flat.text) // 3, 2 * len(flat.text) // 3 + 1))
        lsp_range = index.range_of(start, end, codec)
        assert lsp_range == Range(
            start=flat.position_at(start, codec), end=flat.position_at(end, codec)
        )
        assert index.offsets_of(lsp_range, codec) == (
            flat.offset_at(lsp_range.start, codec),
            flat.offset_at(lsp_range.end, codec),
        )


@settings(max_examples=300, deadline=None)
@given(data=st.data(), chunk_chars=st.sampled_from([1, 2, 3, 5, 8, 16, 64]))
def test_edits_keep_the_chunked_index_equal_to_the_flat_one(data, chunk_chars):
    text = data.draw(pieces(40), label="text")
    index, flat = LineIndex(text, chunk_chars), FlatLineIndex(text)
    assert_same(index, flat)
    for _ in range(data.draw(st.integers(1, 8), label="edits")):
        n = len(flat.text)
        start = data.draw(st.integers(0, n), label="start")
        end = data.draw(
            st.integers(start, min(n, start + data.draw(st.sampled_from([0, 1, 2, 5, n]))))
        )
        new_text = data.draw(pieces(6), label="new_text")
        index.apply_change(start, end, new_text)
        flat.apply_change(start, end, new_text)
        assert_same(index, flat)
        # A fresh build agrees too (the starts a one-pass scan finds).
        fresh = LineIndex(flat.text, chunk_chars)
        assert [fresh.line_text(i) for i in range(fresh.line_count)] == [
            flat.line_text(i) for i in range(flat.line_count)
        ]


@settings(max_examples=100, deadline=None)
@given(data=st.data(), chunk_chars=st.sampled_from([4, 16]))
def test_chunks_stay_bounded_through_many_edits(data, chunk_chars):
    """Typing and deleting do not leave a trail of tiny or empty chunks, nor one huge one."""
    text = data.draw(pieces(60), label="text")
    index, flat = LineIndex(text, chunk_chars), FlatLineIndex(text)
    for _ in range(40):
        n = len(flat.text)
        start = data.draw(st.integers(0, n))
        end = data.draw(st.integers(start, min(n, start + 3)))
        new_text = data.draw(pieces(3))
        index.apply_change(start, end, new_text)
        flat.apply_change(start, end, new_text)
    assert index.text == flat.text
    chunks = index._chunks
    longest_line = max(len(m) for m in _LINE_BREAK.split(flat.text)) + 2
    assert all(chunks) or chunks == [""]
    assert all(len(c) <= chunk_chars + longest_line for c in chunks)
    # Every chunk but the last ends a line, so no \r\n is cut in two.
    assert all(_LINE_BREAK.search(c[-1]) for c in chunks[:-1])
    assert not any(a.endswith("\r") and b.startswith("\n") for a, b in zip(chunks, chunks[1:]))


def test_edits_at_chunk_edges_join_and_part_crlf():
    index, flat = LineIndex("ab\rcd\n", 1), FlatLineIndex("ab\rcd\n")
    for start, end, new_text in [
        (3, 5, ""),
        (3, 3, "\n"),
        (3, 4, ""),
        (2, 3, ""),
        (0, 0, "\r"),
        (4, 4, "\r"),
        (1, 1, "\n"),
    ]:
        index.apply_change(start, end, new_text)
        flat.apply_change(start, end, new_text)
        assert_same(index, flat)


def test_changes_outside_the_text_are_refused():
    index = LineIndex("abc\ndef", 2)
    with pytest.raises(ValueError, match="outside the text"):
        index.apply_change(2, 9, "")
    with pytest.raises(ValueError, match="outside the text"):
        index.apply_change(3, 2, "")
    assert index.text == "abc\ndef"


def test_the_text_is_built_once_per_change():
    index = LineIndex("one\ntwo\nthree\n", 4)
    index.apply_change(4, 7, "TWO")
    assert index.text is index.text == "one\nTWO\nthree\n"


def test_chunks_that_shrink_absorb_a_neighbour():
    index = LineIndex("abcdefghijklmnop\n" * 64, 64)  # four lines a chunk
    for line in range(64):
        index.apply_change(2 * line + 1, 2 * line + 16, "")  # edits inside one chunk
    assert index.text == "a\n" * 64
    assert index.line_count == 65
    assert len(index._chunks) <= len(index.text) // (64 // 4)
