"""A document's text kept in step with its tokens, one change at a time.

``TokenizedDocument`` is what the server holds per open file: it takes changes
in code-point offsets (convert LSP positions with ``positions.LineIndex``) and
answers each with the ``TokenEdit``s the engine applies. Its ids always equal
``TextTokenizer.encode_ids`` of its text; that invariant is property-tested.
The context limit is not applied here (``limits``): the document keeps all of
its tokens.
"""

from __future__ import annotations

from array import array
from typing import Any

from vqlsp.engine.edits import TokenEdit
from vqlsp.text.diff import token_edits
from vqlsp.text.realign import plan_splice
from vqlsp.text.store import CHUNK_TOKENS, TokenStore
from vqlsp.text.tokenizer import TextTokenizer, load_tokenizer


class InvalidChange(ValueError):
    """A change whose offsets do not fit the document (the caller should resync)."""


class TokenizedDocument:
    """Text, token ids and each token's character span, updated incrementally.

    ``tokenizer`` is anything ``load_tokenizer`` takes: a ``tokenizers.Tokenizer``,
    a transformers fast tokenizer, a path to ``tokenizer.json`` or a ``TextTokenizer``
    (pass one ``TextTokenizer`` to share it between documents). ``chunk_tokens``
    is the storage chunk size (``store.CHUNK_TOKENS``); tests make it tiny.
    """

    def __init__(self, text: str, tokenizer: Any, *, chunk_tokens: int = CHUNK_TOKENS) -> None:
        self._tokenizer: TextTokenizer = load_tokenizer(tokenizer)
        self._store = TokenStore(self._tokenizer.encode(text), chunk_tokens)
        self._text: str | None = text

    @property
    def tokenizer(self) -> TextTokenizer:
        return self._tokenizer

    @property
    def text(self) -> str:
        """The whole text (built on first use after a change: O(length))."""
        if self._text is None:
            self._text = self._store.text()
        return self._text

    @property
    def ids(self) -> list[int]:
        """All token ids (a new list: O(tokens))."""
        return self._store.ids()

    @property
    def spans(self) -> list[tuple[int, int]]:
        """Every token's ``(start, end)`` in code points, as the tokenizer's offsets.

        A byte-level BPE may split one character into several tokens; those
        tokens share (overlapping) spans, e.g. ``(28, 30), (29, 30)``.
        """
        return self._store.spans()

    def starts_and_ends(self) -> tuple[array, array]:
        """``spans`` as a table of starts and one of ends (cheaper for a whole long text)."""
        return self._store.starts_and_ends()

    def __len__(self) -> int:
        """Number of tokens."""
        return self._store.n_tokens

    @property
    def n_chars(self) -> int:
        return self._store.n_chars

    def ids_slice(self, start: int, stop: int) -> list[int]:
        """Token ids ``[start, stop)`` without building the whole list."""
        return self._store.ids_between(max(start, 0), min(stop, self._store.n_tokens))

    def spans_slice(self, start: int, stop: int) -> list[tuple[int, int]]:
        """Spans of tokens ``[start, stop)`` without building the whole list."""
        return self._store.spans_between(max(start, 0), min(stop, self._store.n_tokens))

    def span(self, token: int) -> tuple[int, int]:
        """One token's ``(start, end)`` in code points."""
        return self._store.span(token)

    def text_between(self, start: int, end: int) -> str:
        """Characters ``[start, end)`` without building the whole text."""
        return self._store.text_between(max(start, 0), min(end, self._store.n_chars))

    def apply_change(self, start: int, end: int, new_text: str) -> list[TokenEdit]:
        """Replace characters ``[start, end)`` (code points) by ``new_text``.

        Returns the edits that turn the old token ids into the new ones (all
        offsets refer to the old ids, as ``apply_edits`` expects); empty when the
        tokens did not change. Raises ``InvalidChange`` if the range does not fit.
        """
        if not 0 <= start <= end <= self._store.n_chars:
            raise InvalidChange(
                f"change [{start}, {end}) outside the document (0..{self._store.n_chars})"
            )
        if start == end and not new_text:
            return []
        splice = plan_splice(self._store, self._tokenizer, start, end, new_text)
        first_token = self._store.word_token(splice.first)
        old_ids = self._store.ids_between(first_token, self._store.word_token(splice.stop))
        edits = token_edits(old_ids, splice.run.ids, first_token)
        self._store.replace(splice.first, splice.stop, splice.run)
        self._text = None
        return edits

    def replace_all(self, text: str) -> list[TokenEdit]:
        """Replace the whole text (a full-sync ``didChange``), re-tokenizing only what differs.

        The old and new texts are compared first, so a client that sends the
        whole document per keystroke costs one O(length) comparison, not a full
        re-tokenization.
        """
        return self.apply_change(*changed_range(self.text, text))


def changed_range(old: str, new: str) -> tuple[int, int, str]:
    """``(start, end, text)``: replacing ``old[start:end]`` by ``text`` gives ``new``, with the
    common prefix and suffix left out (the smallest such single replacement)."""
    head = _common_prefix_length(old, new)
    tail = _common_prefix_length(old[head:][::-1], new[head:][::-1])
    return head, len(old) - tail, new[head : len(new) - tail]


def _common_prefix_length(a: str, b: str) -> int:
    """Length of the longest common prefix, by bisection on slice equality (C speed)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low
