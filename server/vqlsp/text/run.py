"""A stretch of text with its tokens, cut only where the tokenizer may restart.

Both a re-tokenized window (``realign``) and a chunk of a document (``store``) are
``TokenRun``s, so splicing a window into a document is cutting and joining runs.

A run is divided into *words*: what ``tokenizers`` calls a word (a pre-token;
``Encoding.word_ids``). A word starts at character 0 of the run or where the
pre-tokenizer starts a new pre-token, and holds its tokens plus any text the
pre-tokenizer dropped before the next one (whitespace, for BERT-style
tokenizers; byte-level BPE drops nothing). Word starts are the only places
where a run is ever cut: a byte-level BPE splits one character into
several tokens with overlapping character offsets (an emoji's four bytes give
spans like ``(28, 30), (29, 30)``), but never across a word boundary, so cutting
there keeps every token whole.

All offsets are code points relative to the run's first character, so a run can
be moved without touching them; only cutting and joining rebase them.

The five tables are ``array('i')``s, not lists: a list of Python ints costs 36 bytes
an entry (8 for the pointer, 28 for the int object), an array 4. A 10 MB document has
2.7 million tokens: as lists they held 363 MB, as arrays 84 (``vqlsp bench memory``).
Arrays slice, concatenate and bisect like lists; rebasing offsets is done in numpy
(``shifted``), so the per-keystroke splice costs what it did with lists.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

# Token ids and code-point offsets: signed 32-bit (a document over 2**31 characters is
# refused before it is tokenized, ``TextTokenizer.encode``).
TYPECODE = "i"


def table(values: Iterable[int] = ()) -> array:
    """A run's table (ids or offsets) holding ``values``."""
    return array(TYPECODE, values)


def shifted(values: array, delta: int) -> array:
    """A new table of ``values`` plus ``delta`` each, added in numpy: rebasing 500 offsets
    this way costs 2 us, a list comprehension into an array 25 (measured)."""
    return array(TYPECODE, (np.frombuffer(values, dtype=np.intc) + delta).tobytes())


@dataclass(frozen=True)
class TokenRun:
    """Text and its tokens; treat the tables as read-only (``join``/``split`` may return self).

    ``starts``/``ends`` are each token's character span; ``word_chars`` and
    ``word_tokens`` give each word's first character and first token. A
    non-empty run has at least one word and ``word_chars[0] == 0``; an empty
    run has none.
    """

    text: str
    ids: array
    starts: array
    ends: array
    word_chars: array
    word_tokens: array

    @classmethod
    def empty(cls) -> TokenRun:
        return cls("", table(), table(), table(), table(), table())

    @property
    def n_words(self) -> int:
        return len(self.word_chars)

    def word_char(self, j: int) -> int:
        """First character of word ``j``; ``n_words`` gives the run's length."""
        return self.word_chars[j] if j < len(self.word_chars) else len(self.text)

    def word_token(self, j: int) -> int:
        """First token of word ``j``; ``n_words`` gives the token count."""
        return self.word_tokens[j] if j < len(self.word_tokens) else len(self.ids)

    def cut(self, j0: int, j1: int) -> TokenRun:
        """Words ``[j0, j1)`` as a run of their own (offsets rebased to its start)."""
        if j0 >= j1:
            return TokenRun.empty()
        c0, c1 = self.word_char(j0), self.word_char(j1)
        t0, t1 = self.word_token(j0), self.word_token(j1)
        if c0 == 0 and t0 == 0:
            return TokenRun(
                self.text[:c1],
                self.ids[:t1],
                self.starts[:t1],
                self.ends[:t1],
                self.word_chars[:j1],
                self.word_tokens[:j1],
            )
        return TokenRun(
            self.text[c0:c1],
            self.ids[t0:t1],
            shifted(self.starts[t0:t1], -c0),
            shifted(self.ends[t0:t1], -c0),
            shifted(self.word_chars[j0:j1], -c0),
            shifted(self.word_tokens[j0:j1], -t0),
        )

    def splice(self, j0: int, j1: int, run: TokenRun) -> TokenRun:
        """This run with words ``[j0, j1)`` replaced by ``run``.

        The same as joining three cuts, but what follows is rebased once, not
        twice: this is the per-keystroke path.
        """
        c0, c1 = self.word_char(j0), self.word_char(j1)
        t0, t1 = self.word_token(j0), self.word_token(j1)
        chars = c0 + len(run.text) - c1
        tokens = t0 + len(run.ids) - t1
        return TokenRun(
            self.text[:c0] + run.text + self.text[c1:],
            self.ids[:t0] + run.ids + self.ids[t1:],
            self.starts[:t0] + shifted(run.starts, c0) + shifted(self.starts[t1:], chars),
            self.ends[:t0] + shifted(run.ends, c0) + shifted(self.ends[t1:], chars),
            self.word_chars[:j0] + shifted(run.word_chars, c0) + shifted(self.word_chars[j1:], chars),
            self.word_tokens[:j0] + shifted(run.word_tokens, t0) + shifted(self.word_tokens[j1:], tokens),
        )

    @staticmethod
    def join(runs: Sequence[TokenRun]) -> TokenRun:
        """The runs one after the other; each one's words stay words."""
        runs = [run for run in runs if run.text]
        if len(runs) == 1:
            return runs[0]
        text: list[str] = []
        ids, starts, ends, word_chars, word_tokens = table(), table(), table(), table(), table()
        chars = tokens = 0
        for run in runs:
            text.append(run.text)
            ids.extend(run.ids)
            starts.extend(shifted(run.starts, chars))
            ends.extend(shifted(run.ends, chars))
            word_chars.extend(shifted(run.word_chars, chars))
            word_tokens.extend(shifted(run.word_tokens, tokens))
            chars += len(run.text)
            tokens += len(run.ids)
        return TokenRun("".join(text), ids, starts, ends, word_chars, word_tokens)

    def split(self, target_tokens: int) -> list[TokenRun]:
        """Cut into runs of about ``target_tokens`` tokens each, at word starts.

        A run of at most twice the target stays whole, so a chunk that grows by a
        keystroke is not re-cut every time. One word longer than the target
        (a very long word) stays whole too.
        """
        if not self.text:
            return []
        if len(self.ids) <= 2 * target_tokens:
            return [self]
        cuts = [0]
        next_cut = target_tokens
        for j, token in enumerate(self.word_tokens):
            if token >= next_cut and j > cuts[-1]:
                cuts.append(j)
                next_cut = token + target_tokens
        cuts.append(self.n_words)
        return [self.cut(j0, j1) for j0, j1 in pairwise(cuts)]
