"""Hypothesis strategies for text that tokenizers find hard."""

from __future__ import annotations

from hypothesis import strategies as st

FRAGMENTS = [
    # words, contractions, punctuation
    "the",
    " writer",
    "a",
    "I",
    "it's",
    "'s",
    "'ll",
    "'RE",
    "don't",
    ".",
    ",",
    "!",
    "...",
    "—",
    "Supercalifragilisticexpialidocious",
    "x" * 40,
    # whitespace: runs, tabs, line ends (CRLF, lone CR), Unicode spaces and near-spaces
    " ",
    "  ",
    "     ",
    "\t",
    "\t\t",
    "\n",
    "\n\n",
    "\r\n",
    "\r",
    "\r\r\n",
    "\u00a0",
    "\u3000",
    "\u2028",
    "\x0b",
    "\x0c",
    "\x1c",
    "\u180e",
    "\u200b",
    "\x85",
    # digits
    "1",
    "42",
    "12345",
    "2024-11-22",
    "3.14159",
    # astral characters, emoji sequences, combining marks, CJK, other scripts
    "😋",
    "👍🏽",
    "👨\u200d👩\u200d👧",
    "𝕏𝕐",
    "🇫🇷",
    "e\u0301",
    "n\u0303\u0301",
    "\u0301",
    "日本語",
    "中文字符",
    "한국어",
    "Ünïcödé",
    "ﬁ",
    "İ",
    "ß",
    "Привет",
    "مرحبا",
    # special-token look-alikes (typed text, never control tokens)
    "<|endoftext|>",
    "</s>",
    "<|im_start|>",
    "[CLS]",
]

# Any code point but lone surrogates (tested on their own).
_ANY_CHAR = st.characters(exclude_categories=("Cs",))


def texts(max_pieces: int = 30) -> st.SearchStrategy[str]:
    """Text made of the fragments above and random characters."""
    piece = st.one_of(
        st.sampled_from(FRAGMENTS),
        st.sampled_from(FRAGMENTS),
        st.text(alphabet=_ANY_CHAR, min_size=1, max_size=3),
    )
    return st.lists(piece, max_size=max_pieces).map("".join)
