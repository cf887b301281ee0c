"""One keystroke in a 100,000-character document touches a handful of tokens and characters.

Time is measured by ``vqlsp bench text``, not here (machines are shared); what
is asserted is the work: how many tokens the edits change, and how many
characters were handed to the tokenizer, which must not grow with the document.
"""

from __future__ import annotations

import random

import pytest

from vqlsp.bench.text_bench import make_prose
from vqlsp.engine.edits import apply_edits
from vqlsp.text.document import TokenizedDocument
from vqlsp.text.run import TokenRun
from vqlsp.text.tokenizer import TextTokenizer


class CountingTokenizer(TextTokenizer):
    """Records how many characters each window re-tokenization was given."""

    def __init__(self, tokenizer: TextTokenizer) -> None:
        super().__init__(tokenizer.backend)
        self.encoded_chars: list[int] = []

    def encode(self, text: str) -> TokenRun:
        self.encoded_chars.append(len(text))
        return super().encode(text)


@pytest.mark.parametrize("text_tokenizer", ["smollm2", "gpt2"], indirect=True)
@pytest.mark.parametrize("size", [1_000, 100_000])
def test_one_character_mid_document_changes_a_handful_of_tokens(text_tokenizer, size):
    counting = CountingTokenizer(text_tokenizer)
    text = make_prose(size, random.Random(1))
    doc = TokenizedDocument(text, counting)
    middle = size // 2
    for start, end, new_text in [
        (middle, middle, "x"),  # insert
        (middle, middle + 1, ""),  # delete
        (middle + 7, middle + 8, "Q"),  # replace
        (middle + 20, middle + 20, " "),  # split a word
        (middle + 40, middle + 40, "\n"),
    ]:
        counting.encoded_chars.clear()
        before = doc.ids
        edits = doc.apply_change(start, end, new_text)
        text = text[:start] + new_text + text[end:]
        assert apply_edits(before, edits) == doc.ids == counting.encode_ids(text)
        changed = sum(e.end - e.start + len(e.new_ids) for e in edits)
        assert changed <= 8, edits
        assert sum(counting.encoded_chars) <= 100, counting.encoded_chars


@pytest.mark.parametrize("text_tokenizer", ["smollm2"], indirect=True)
def test_typing_a_sentence_mid_document_stays_local(text_tokenizer):
    counting = CountingTokenizer(text_tokenizer)
    text = make_prose(100_000, random.Random(2))
    doc = TokenizedDocument(text, counting)
    cursor = 50_000
    for char in "Typing one more sentence, with 3 numbers and an emoji 😋.\n":
        counting.encoded_chars.clear()
        edits = doc.apply_change(cursor, cursor, char)
        cursor += 1
        assert sum(e.end - e.start + len(e.new_ids) for e in edits) <= 8
        assert sum(counting.encoded_chars) <= 100
    text = (
        text[:50_000]
        + "Typing one more sentence, with 3 numbers and an emoji 😋.\n"
        + text[50_000:]
    )
    assert doc.ids == counting.encode_ids(text)
