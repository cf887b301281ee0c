"""LSP positions <-> code-point offsets in UTF-8, UTF-16 and UTF-32, on lines with astral characters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol.types import Position, PositionEncodingKind, Range
from pygls.workspace.position_codec import PositionCodec

from vqlsp.text.positions import InvalidRange, LineIndex, code_units, column_at

from .strategies import texts

ENCODINGS = {
    PositionEncodingKind.Utf8: "utf-8",
    PositionEncodingKind.Utf16: "utf-16-le",
    PositionEncodingKind.Utf32: "utf-32-le",
}
UNIT_BYTES = {"utf-8": 1, "utf-16-le": 2, "utf-32-le": 4}


def units(text: str, codec_name: str) -> int:
    """Code units of ``text`` in an encoding: the test's independent oracle."""
    return len(text.encode(codec_name)) // UNIT_BYTES[codec_name]


def lsp_lines(text: str) -> list[str]:
    """The text's lines as LSP defines them (terminators ``\\n``, ``\\r\\n``, ``\\r``), without them."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


@pytest.mark.parametrize("kind", ENCODINGS)
def test_spec_example(kind):
    # From the LSP spec / pygls: the closing quote of x="😋".
    index = LineIndex('a\nx="😋"\n')
    expected = {"utf-8": 7, "utf-16-le": 5, "utf-32-le": 4}[ENCODINGS[kind]]
    codec = PositionCodec(kind)
    assert index.position_at(6, codec) == Position(line=1, character=expected)
    assert index.offset_at(Position(line=1, character=expected), codec) == 6


@pytest.mark.parametrize("kind", ENCODINGS)
@settings(max_examples=100, deadline=None)
@given(text=texts(25))
def test_every_offset_round_trips(kind, text):
    codec = PositionCodec(kind)
    index = LineIndex(text)
    lines = lsp_lines(text)
    assert index.line_count == len(lines)
    offset = 0
    for number, line in enumerate(lines):
        for column in range(len(line) + 1):
            position = index.position_at(offset + column, codec)
            expected = units(line[:column], ENCODINGS[kind])
            assert position == Position(line=number, character=expected)
            assert index.offset_at(position, codec) == offset + column
        offset += len(line)
        offset += 2 if text.startswith("\r\n", offset) else 1


@pytest.mark.parametrize("kind", ENCODINGS)
def test_ranges_round_trip_on_astral_lines(kind):
    codec = PositionCodec(kind)
    text = "𝕏 marks 😋 the spot\r\n👨\u200d👩\u200d👧 family\rnext 日本語"
    index = LineIndex(text)
    for start, end in [(0, 1), (2, 9), (8, 9), (21, 26), (29, 36), (0, len(text))]:
        lsp_range = index.range_of(start, end, codec)
        assert index.offsets_of(lsp_range, codec) == (start, end)


def test_only_lsp_line_terminators_split_lines():
    # str.splitlines would also split at \v, \f, \x1c, \x85 and U+2028; LSP clients do not.
    index = LineIndex("a\vb\fc\x1cd\x85e\u2028f\r\ng\rh\ni")
    assert index.line_count == 4
    assert index.line_text(0) == "a\vb\fc\x1cd\x85e\u2028f"


def test_positions_past_a_line_end_mean_its_end_not_its_terminator():
    codec = PositionCodec(PositionEncodingKind.Utf16)
    index = LineIndex("ab😋\r\nlast")
    assert index.offset_at(Position(line=0, character=99), codec) == 3
    assert index.offset_at(Position(line=1, character=99), codec) == len("ab😋\r\nlast")
    assert index.offset_at(Position(line=7, character=0), codec) == len("ab😋\r\nlast")
    # An offset between \r and \n is the end of the line.
    assert index.position_at(4, codec) == Position(line=0, character=4)


def test_the_caller_position_is_not_modified():
    position = Position(line=0, character=50)
    LineIndex("short").offset_at(position, PositionCodec(PositionEncodingKind.Utf16))
    assert position == Position(line=0, character=50)


def test_reversed_ranges_are_refused():
    index = LineIndex("one\ntwo")
    backwards = Range(start=Position(line=1, character=0), end=Position(line=0, character=1))
    with pytest.raises(InvalidRange):
        index.offsets_of(backwards, PositionCodec(PositionEncodingKind.Utf16))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_index_kept_in_step_equals_a_fresh_one(data):
    alphabet = st.sampled_from(["a", "😋", "\r", "\n", "\r\n", " ", "é"])
    text = "".join(data.draw(st.lists(alphabet, max_size=30)))
    index = LineIndex(text)
    for _ in range(data.draw(st.integers(1, 6))):
        start = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(start, len(text)))
        new_text = "".join(data.draw(st.lists(alphabet, max_size=4)))
        index.apply_change(start, end, new_text)
        text = text[:start] + new_text + text[end:]
        fresh = LineIndex(text)
        assert index.text == text
        assert [index.line_text(i) for i in range(index.line_count)] == lsp_lines(text)
        assert index.line_count == fresh.line_count


@pytest.mark.parametrize(
    ("kind", "character"),
    [
        (PositionEncodingKind.Utf16, 3),  # between the two halves of 😋 (issue 16)
        (PositionEncodingKind.Utf8, 3),  # inside the four bytes of 😋
        (PositionEncodingKind.Utf8, 5),
        (PositionEncodingKind.Utf8, 7),  # inside the two bytes of é
    ],
)
def test_a_position_inside_a_character_is_refused(kind, character):
    codec = PositionCodec(kind)
    index = LineIndex("ab😋é\r\nlast")
    inside = Position(line=0, character=character)
    with pytest.raises(InvalidRange, match=f"line 0, character {character} falls inside"):
        index.offset_at(inside, codec)
    # A change would be refused too (the store logs a desync and asks the client to resync).
    after = Position(line=1, character=0)
    with pytest.raises(InvalidRange, match=f"line 0, character {character}"):
        index.offsets_of(Range(start=inside, end=after), codec)
    with pytest.raises(InvalidRange):
        index.offsets_of(Range(start=Position(line=0, character=0), end=inside), codec)


@pytest.mark.parametrize("kind", ENCODINGS)
def test_positions_around_a_character_are_kept(kind):
    codec = PositionCodec(kind)
    index = LineIndex("ab😋é\r\nlast")
    for offset in range(5):
        assert index.offset_at(index.position_at(offset, codec), codec) == offset
    # Past the end of the line is still its end, however many units past.
    assert index.offset_at(Position(line=0, character=99), codec) == 4


@pytest.mark.parametrize("kind", ENCODINGS)
@settings(max_examples=200, deadline=None)
@given(line=st.text(alphabet=st.characters(exclude_categories=(), exclude_characters="\r\n"), max_size=30),
       data=st.data())
def test_counting_in_c_agrees_with_pyglss_codec(kind, line, data):
    """``code_units`` / ``column_at`` (the line encoded in C) against pygls's per-character
    loop, on any code points: astral ones, lone surrogates, multi-byte UTF-8."""
    codec = PositionCodec(kind)
    assert code_units(line, codec) == codec.client_num_units(line)
    units = data.draw(st.integers(0, code_units(line, codec)))
    expected = codec.position_from_client_units([line], Position(line=0, character=units)).character
    assert column_at(line, units, codec) == expected


@pytest.mark.parametrize("kind", ENCODINGS)
def test_two_lone_halves_side_by_side_stay_two_code_points(kind):
    codec = PositionCodec(kind)
    for line in ("a\ud83d\ude00b", "\ud83d\ude00", "x\U0001f600\ud83dy"):
        assert code_units(line, codec) == codec.client_num_units(line)
        for units in range(code_units(line, codec) + 1):
            expected = codec.position_from_client_units([line], Position(line=0, character=units)).character
            assert column_at(line, units, codec) == expected, (line, units)
