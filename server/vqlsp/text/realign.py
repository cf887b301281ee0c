"""Which stretch of a document to re-tokenize for one change (DESIGN.md, "Text -> token edits").

A change replaces characters ``[start, end)`` by ``new_text``. We re-tokenize a
window ``[a, b)`` of the *old* text, with the change applied, and keep the
window's tokens up to a point ``q`` where its tokenization re-aligns with the
old one. Everything before ``a`` and from ``q`` on is kept as it was.

Why this is exact, not just likely, for the byte-level BPEs we serve (GPT-2 /
OPT, SmolLM2, Llama-3-style split regexes):

* A document is cut into pre-tokens ("words") by a regex scanned left to right,
  then BPE runs inside each word. So tokenizing from any word start gives the
  same tokens there as tokenizing from the beginning ("restart point"; the
  regexes have no look-behind).
* The scan that ends a word reads a bounded number of characters past it (at
  most three: contractions, digit groups), *except* in a whitespace run, where
  ``\\s+(?!\\S)`` reads to the end of the run. So an old word start ``a`` is
  still one in the new text when ``[a, start)`` is at least ``context_chars``
  long and holds a character that is certainly not whitespace: nothing read
  to end the words before ``a`` can reach the change. (Python's ``\\s`` is a
  superset of the regex engine's, so ``[^\\s]`` is a safe test.)
* Symmetrically, tokenizing the window on its own gives the right words up to
  a point ``q`` when ``[q, window end)`` is that long and holds such a
  character too (or the window runs to the end of the document). If ``q`` is
  also an old word start past the change, both texts continue identically
  from a restart point, and so do their tokens.

Both conditions are checked on the actual text, and on top of them the
re-tokenized window must reproduce the old first word and the old word at
``q`` exactly; when anything fails, the window grows (doubling the extra words
on the failing side) until it does, at worst to the whole document. For other
tokenizers (Metaspace, BERT with a normalizer) the reasoning above is not
ours to make and that check is what we rely on: they pass the same property
tests, but there exactness is tested, not argued, and they may re-tokenize more
(Metaspace marks the text's start, so its windows reach back to it).
Added tokens that are matched in text are longer than the usual margin, so
``context_chars`` grows to cover the longest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vqlsp.text.run import TokenRun
from vqlsp.text.store import TokenStore
from vqlsp.text.tokenizer import TextTokenizer

# U+180E was whitespace before Unicode 6.3; treat it as such in case the
# tokenizer's regex engine uses older tables.
_NON_SPACE = re.compile(r"[^\s\u180e]")


@dataclass(frozen=True)
class Splice:
    """Replace the old document's words ``[first, stop)`` by ``run``."""

    first: int
    stop: int
    run: TokenRun


def plan_splice(
    store: TokenStore, tokenizer: TextTokenizer, start: int, end: int, new_text: str
) -> Splice:
    """Re-tokenize around ``[start, end) -> new_text`` until it re-aligns on both sides."""
    delta = len(new_text) - (end - start)
    margin = tokenizer.context_chars
    left_words = right_words = 1
    while True:
        first = _left_anchor(store, start, left_words, margin)
        limit = _right_limit(store, end, right_words, margin)
        a, b = store.word_char(first), store.word_char(limit)
        window = store.text_between(a, start) + new_text + store.text_between(end, b)
        run = tokenizer.encode(window)
        left_ok = first == 0 or _same_word(store, first, run, 0)
        aligned = _realign(store, run, a, b, end, delta, margin)
        if left_ok and aligned is not None:
            kept, stop = aligned
            return Splice(first, stop, run.cut(0, kept))
        if not left_ok:
            left_words *= 2
        if aligned is None:
            right_words *= 2


def _left_anchor(store: TokenStore, start: int, extra: int, margin: int) -> int:
    """The word to re-tokenize from: ``extra`` whole words before the one holding
    ``start - 1`` (a keystroke can join that one), then back until ``margin``
    characters with a non-space lie before the change."""
    if start == 0:
        return 0
    j = store.word_at(start - 1) - extra
    while j > 0:
        a = store.word_char(j)
        if start - a >= margin and _NON_SPACE.search(store.text_between(a, start)):
            return j
        j -= 1
    return 0


def _right_limit(store: TokenStore, end: int, extra: int, margin: int) -> int:
    """The word to stop the window at: ``extra`` whole words after the one holding
    ``end``, and at least ``margin`` characters after it."""
    if end >= store.n_chars:
        return store.n_words
    j = store.word_at(end) + 1 + extra
    while j < store.n_words and store.word_char(j) - end < margin:
        j += 1
    return min(j, store.n_words)


def _realign(
    store: TokenStore, run: TokenRun, a: int, b: int, end: int, delta: int, margin: int
) -> tuple[int, int] | None:
    """The first window word from which old tokens can be kept, as
    (window word, old word); ``None`` when the window is too short to tell."""
    at_end = b >= store.n_chars
    for kept in range(run.n_words):
        r = run.word_chars[kept]
        old = a + r - delta
        if old < end:
            continue
        if not at_end and (len(run.text) - r < margin or not _NON_SPACE.search(run.text, r)):
            return None  # later candidates have even less context after them
        j = store.word_at(old)
        if store.word_char(j) != old:
            continue
        if kept + 1 == run.n_words and not at_end:
            return None  # the window's last word may be cut short: cannot compare
        if _same_word(store, j, run, kept):
            return kept, j
    if at_end:
        return run.n_words, store.n_words
    return None


def _same_word(store: TokenStore, j: int, run: TokenRun, k: int) -> bool:
    """Whether old word ``j`` and window word ``k`` have the same length and tokens."""
    old_length = store.word_char(j + 1) - store.word_char(j)
    if run.word_char(k + 1) - run.word_char(k) != old_length:
        return False
    old_ids = store.ids_between(store.word_token(j), store.word_token(j + 1))
    return run.ids[run.word_token(k) : run.word_token(k + 1)].tolist() == old_ids
