"""A document's text and tokens in word-aligned chunks, so one edit costs O(chunk), not O(document).

A flat list of 25,000 tokens with absolute offsets would need every later
offset shifted on every keystroke. Here the document is a list of ``TokenRun``
chunks of a few hundred tokens, each with offsets relative to its own start; a
splice rebuilds only the chunks it touches, and the chunk start tables (one
entry per chunk) are rebuilt with ``itertools.accumulate``. At 100,000
characters that is ~100 chunks: the per-edit cost stays flat in practice.

Positions are addressed by global *word* index (a pre-token, see ``run``): word
``j`` starts at ``word_char(j)`` and its first token is ``word_token(j)``;
``j == n_words`` means the end of the document.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from itertools import accumulate, chain

from vqlsp.text.run import TokenRun, shifted, table

# Target tokens per chunk: large enough that the chunk tables stay short, small
# enough that rebuilding one chunk per keystroke is cheap. Typing mid-document at
# 100k characters: 128 and 256 within a few percent, 64 and 512 10-20% slower.
CHUNK_TOKENS = 256


class TokenStore:
    """The chunks of one document; ``replace`` is the only mutation."""

    def __init__(self, run: TokenRun, chunk_tokens: int = CHUNK_TOKENS) -> None:
        self._chunk_tokens = chunk_tokens
        self._chunks: list[TokenRun] = []
        # Per chunk: characters, tokens, words.
        self._sizes: tuple[list[int], list[int], list[int]] = ([], [], [])
        self._set_chunks(0, 0, run.split(chunk_tokens))

    def _set_chunks(self, k0: int, k1: int, chunks: list[TokenRun]) -> None:
        """Replace chunks ``[k0, k1)`` and rebuild the start tables (C-speed, O(chunks))."""
        self._chunks[k0:k1] = chunks
        chars, tokens, words = self._sizes
        chars[k0:k1] = [len(c.text) for c in chunks]
        tokens[k0:k1] = [len(c.ids) for c in chunks]
        words[k0:k1] = [len(c.word_chars) for c in chunks]
        # Where each chunk starts, plus the total at the end.
        self._chunk_char = list(accumulate(chars, initial=0))
        self._chunk_token = list(accumulate(tokens, initial=0))
        self._chunk_word = list(accumulate(words, initial=0))

    @property
    def n_chars(self) -> int:
        return self._chunk_char[-1]

    @property
    def n_tokens(self) -> int:
        return self._chunk_token[-1]

    @property
    def n_words(self) -> int:
        return self._chunk_word[-1]

    # -- lookups ---------------------------------------------------------------

    def word_at(self, pos: int) -> int:
        """The word holding character ``pos`` (``n_words`` for the end)."""
        if pos >= self.n_chars:
            return self.n_words
        k = bisect_right(self._chunk_char, pos) - 1
        chunk = self._chunks[k]
        return self._chunk_word[k] + bisect_right(chunk.word_chars, pos - self._chunk_char[k]) - 1

    def _locate(self, j: int) -> tuple[int, int]:
        """(chunk, word in chunk) of global word ``j < n_words``."""
        k = bisect_right(self._chunk_word, j) - 1
        return k, j - self._chunk_word[k]

    def word_char(self, j: int) -> int:
        if j >= self.n_words:
            return self.n_chars
        k, local = self._locate(j)
        return self._chunk_char[k] + self._chunks[k].word_chars[local]

    def word_token(self, j: int) -> int:
        if j >= self.n_words:
            return self.n_tokens
        k, local = self._locate(j)
        return self._chunk_token[k] + self._chunks[k].word_tokens[local]

    def text_between(self, start: int, end: int) -> str:
        """Characters ``[start, end)``."""
        if start >= end:
            return ""
        k0 = bisect_right(self._chunk_char, start) - 1
        k1 = bisect_left(self._chunk_char, end) - 1
        pieces = []
        for k in range(k0, k1 + 1):
            base = self._chunk_char[k]
            pieces.append(self._chunks[k].text[max(start - base, 0) : end - base])
        return "".join(pieces)

    def ids_between(self, start: int, end: int) -> list[int]:
        """Token ids ``[start, end)``."""
        if start >= end:
            return []
        k0 = bisect_right(self._chunk_token, start) - 1
        k1 = bisect_left(self._chunk_token, end) - 1
        ids: list[int] = []
        for k in range(k0, k1 + 1):
            base = self._chunk_token[k]
            ids.extend(self._chunks[k].ids[max(start - base, 0) : end - base])
        return ids

    def spans_between(self, start: int, end: int) -> list[tuple[int, int]]:
        """Character spans of tokens ``[start, end)``."""
        spans: list[tuple[int, int]] = []
        if start >= end:
            return spans
        k0 = bisect_right(self._chunk_token, start) - 1
        k1 = bisect_left(self._chunk_token, end) - 1
        for k in range(k0, k1 + 1):
            chunk, chars, tokens = self._chunks[k], self._chunk_char[k], self._chunk_token[k]
            lo, hi = max(start - tokens, 0), end - tokens
            spans.extend(
                (chars + s, chars + e) for s, e in zip(chunk.starts[lo:hi], chunk.ends[lo:hi])
            )
        return spans

    def span(self, token: int) -> tuple[int, int]:
        """Character span of one token."""
        if not 0 <= token < self.n_tokens:
            raise IndexError(f"token {token} out of range ({self.n_tokens} tokens)")
        k = bisect_right(self._chunk_token, token) - 1
        chunk, base, local = self._chunks[k], self._chunk_char[k], token - self._chunk_token[k]
        return base + chunk.starts[local], base + chunk.ends[local]

    # -- whole-document views (O(n)) --------------------------------------------

    def text(self) -> str:
        return "".join(chunk.text for chunk in self._chunks)

    def ids(self) -> list[int]:
        return list(chain.from_iterable(chunk.ids for chunk in self._chunks))

    def spans(self) -> list[tuple[int, int]]:
        return self.spans_between(0, self.n_tokens)

    def starts_and_ends(self) -> tuple[array, array]:
        """Every token's start and its end, as two tables: no tuple, nor int object, per token
        (a 10 MB text has 2.7 million tokens)."""
        starts, ends = table(), table()
        for chunk, chars in zip(self._chunks, self._chunk_char):
            starts.extend(shifted(chunk.starts, chars))
            ends.extend(shifted(chunk.ends, chars))
        return starts, ends

    # -- mutation ----------------------------------------------------------------

    def replace(self, j0: int, j1: int, run: TokenRun) -> None:
        """Replace words ``[j0, j1)`` (text and tokens) by ``run``.

        ``run`` must be what the tokenizer gives for the new text there, with its
        first character at a restart point (``realign`` guarantees both).
        """
        if not self._chunks:
            self._set_chunks(0, 0, run.split(self._chunk_tokens))
            return
        # First chunk touched: the one holding word j0, or the last one when
        # appending. Last: the first one whose words reach j1.
        if j0 < self.n_words:
            k0, local0 = self._locate(j0)
        else:
            k0 = len(self._chunks) - 1
            local0 = self._chunks[k0].n_words
        k1 = max(bisect_left(self._chunk_word, j1) - 1, k0)
        local1 = j1 - self._chunk_word[k1]
        first, last = self._chunks[k0], self._chunks[k1]
        if k0 == k1:
            region = first.splice(local0, local1, run)
        else:
            region = TokenRun.join([first.cut(0, local0), run, last.cut(local1, last.n_words)])
        # Keep chunks from dwindling: a small region absorbs a neighbour.
        if len(region.ids) < self._chunk_tokens // 4 and len(self._chunks) > k1 - k0 + 1:
            if k1 + 1 < len(self._chunks):
                k1 += 1
                region = TokenRun.join([region, self._chunks[k1]])
            else:
                k0 -= 1
                region = TokenRun.join([self._chunks[k0], region])
        self._set_chunks(k0, k1 + 1, region.split(self._chunk_tokens))
