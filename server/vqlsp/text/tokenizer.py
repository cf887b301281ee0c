"""Encoding text the way a document does: a Hugging Face fast tokenizer, set up for prose.

``TextTokenizer.encode`` is *the* from-scratch tokenization of a document; the
incremental path in ``realign`` must always reproduce it. It works on a private
copy of the tokenizer with three settings changed, because each would otherwise
break that promise or the character spans:

* no truncation and no padding: a document is tokenized whole; what the model
  sees of a long one is decided later (``limits``);
* no post-processor: with ``add_special_tokens=False`` post-processors add no
  tokens, but some (GPT-2/RoBERTa ``ByteLevel(trim_offsets=True)``) move offsets
  off leading spaces, and a document's spans must cover its text;
* special tokens are text: a writer who types ``<|endoftext|>`` gets those
  characters tokenized, not the control token (``encode_special_tokens``).

Lone surrogates (possible in JSON-decoded LSP text, not encodable as UTF-8) are
tokenized as U+FFFD; that keeps every offset, as both are one code point.

Any ``tokenizers.Tokenizer`` works (it always reports offsets), as does a
transformers "fast" tokenizer through its ``backend_tokenizer``. Slow
(pure-Python) tokenizers have no offsets and are refused.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from itertools import islice, pairwise
from pathlib import Path
from typing import Any

from tokenizers import Encoding, Tokenizer

from vqlsp.text.run import TokenRun, table

_SURROGATE = re.compile("[\ud800-\udfff]")
# Texts longer than this are encoded through ``encode_batch``, which releases the GIL
# (``encode`` holds it: 2.1 s for a 2 MB text, measured), so a long document tokenized on
# a thread never stalls the server's event loop. Same encoding either way.
LONG_TEXT_CHARS = 1 << 14
# ... and in pieces of about this many characters: reading one encoding's offsets, ids and
# word ids into Python holds the GIL (10 MB of prose: 418, 134 and 81 ms, measured), which
# the event loop would wait for; a piece's take ~3 ms. Pieces are cut only at a space
# between two non-space characters where encoding a window around the cut in two parts
# gives the window's own tokens (``_piece_starts``), so the ids are the same as whole.
PIECE_CHARS = 1 << 16
# Pieces encoded by one ``encode_batch`` call. An encoding holds ~150 bytes a token in
# Rust (token strings, offsets, word ids...): a 10 MB text's 2.7 M tokens encoded in one
# call took 477 MB at once and left the process 423 MB larger after they were freed
# (RSS, measured); 8 pieces (~0.5 MB of text) at a time: 111 MB, 70 MB after, as fast.
BATCH_PIECES = 8
# Characters on each side of a candidate cut that ``_piece_starts`` re-encodes to check it.
CUT_CHECK_CHARS = 64
MAX_CUT_TRIES = 16  # candidates tried per piece before moving on
_CUT_CANDIDATE = re.compile(r"(?<=\S) (?=\S)")

# Characters of context kept on each side of a change even for tokenizers whose
# pre-tokenizer looks only a few characters ahead (GPT-2's contractions read
# three, Llama-3's digit groups three); see ``realign``.
MIN_CONTEXT_CHARS = 8


# A run's offsets are 32-bit (``run.TYPECODE``): far beyond any text an editor sends.
MAX_TEXT_CHARS = (1 << 31) - 1


class TextTooLong(ValueError):
    """A text longer than ``MAX_TEXT_CHARS``, which a run's offsets cannot address."""


class UnsupportedTokenizer(TypeError):
    """The object is not a Hugging Face fast tokenizer (or a path to one's ``tokenizer.json``)."""


class TextTokenizer:
    """A fast tokenizer configured to tokenize document text; see the module docstring."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        # A copy: the caller's tokenizer may be shared with code that wants its settings.
        backend = Tokenizer.from_str(tokenizer.to_str())
        backend.no_truncation()
        backend.no_padding()
        backend.post_processor = None
        backend.encode_special_tokens = True
        self._backend = backend
        matched = [
            token.content
            for token in backend.get_added_tokens_decoder().values()
            if not token.special
        ]
        # Added tokens are matched on the raw text before pre-tokenization, so a
        # change can alter a match that starts up to one token's length before it.
        self.context_chars = max([MIN_CONTEXT_CHARS, *(len(c) + 1 for c in matched)])

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TextTokenizer:
        """Load a ``tokenizer.json``.

        Checked with ``json`` first, because ``tokenizers`` reports a wrong file
        with a bare ``Exception`` that cannot be told apart from other failures.
        """
        text = Path(path).read_text(encoding="utf-8")
        try:
            config = json.loads(text)
        except json.JSONDecodeError as error:
            raise UnsupportedTokenizer(f"{path}: not a tokenizer.json ({error})") from error
        if not isinstance(config, dict) or "model" not in config:
            raise UnsupportedTokenizer(f"{path}: not a tokenizer.json (no tokenizer model in it)")
        return cls(Tokenizer.from_str(text))

    @property
    def backend(self) -> Tokenizer:
        """The configured private copy (do not change its settings)."""
        return self._backend

    def encode_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` from scratch; what a document's ids must always equal."""
        return self._backend.encode(_encodable(text), add_special_tokens=False).ids

    def encode(self, text: str, *, piece_chars: int = PIECE_CHARS) -> TokenRun:
        """Tokenize ``text`` from scratch, with spans and word starts (see ``run``); a long
        text in pieces of about ``piece_chars`` characters (see ``PIECE_CHARS``)."""
        if not text:
            return TokenRun.empty()
        if len(text) > MAX_TEXT_CHARS:
            raise TextTooLong(f"{len(text):,} characters: token offsets are 32-bit, at most {MAX_TEXT_CHARS:,}")
        if len(text) <= LONG_TEXT_CHARS:
            starts = [0]
            encodings: Iterator[Encoding] = iter([self._backend.encode(_encodable(text), add_special_tokens=False)])
        else:  # ``encode_batch`` lets other threads run meanwhile
            starts = self._piece_starts(text, piece_chars)
            encodings = self._encode_pieces(text, starts)
        ids, token_starts, token_ends = table(), table(), table()
        word_chars, word_tokens = table([0]), table([0])
        # A new pre-token starts a word only where no earlier token reaches past its
        # start, so a cut there leaves every token whole. (Pieces start new pre-tokens.)
        reach = 0
        previous_word: int | None = -1
        word_base = 0  # word ids restart in each piece: shifted past the last piece's
        for base, encoding in zip(starts, encodings):
            offsets = encoding.offsets
            first = len(ids)
            ids.extend(encoding.ids)
            token_starts.extend([start + base for start, _ in offsets])
            token_ends.extend([end + base for _, end in offsets])
            for i, word in enumerate(encoding.word_ids, start=first):
                start = token_starts[i]
                if word is not None:
                    word += word_base
                    if word != previous_word and start > word_chars[-1] and start >= reach:
                        word_chars.append(start)
                        word_tokens.append(i)
                    previous_word = word
                reach = max(reach, token_ends[i])
            word_base += len(offsets) + 1
        return TokenRun(text, ids, token_starts, token_ends, word_chars, word_tokens)

    def _encode_pieces(self, text: str, starts: list[int]) -> Iterator[Encoding]:
        """The encodings of ``text``'s pieces (starting at ``starts``), ``BATCH_PIECES`` pieces
        per ``encode_batch``, each one freed once the caller moves on (``_one_at_a_time``)."""
        bounds = list(pairwise([*starts, len(text)]))
        for first in range(0, len(bounds), BATCH_PIECES):
            pieces = [_encodable(text[a:b]) for a, b in bounds[first : first + BATCH_PIECES]]
            yield from _one_at_a_time(self._backend.encode_batch(pieces, add_special_tokens=False))

    def _piece_starts(self, text: str, piece_chars: int) -> list[int]:
        """Where to cut ``text`` into pieces encoded apart: 0, then the first checked cut at
        or after every ``piece_chars`` characters (a piece runs on where none of the next
        ``MAX_CUT_TRIES`` candidates checks out, and to the end where none is left)."""
        out = [0]
        target = piece_chars
        while target < len(text):
            candidates = [m.start() for m in islice(_CUT_CANDIDATE.finditer(text, target), MAX_CUT_TRIES)]
            if not candidates:
                break
            cut = next((c for c in candidates if self._cut_keeps_tokens(text, c)), None)
            if cut is not None:
                out.append(cut)
            target = (cut or target) + piece_chars
        return out

    def _cut_keeps_tokens(self, text: str, cut: int) -> bool:
        """Whether a window around ``cut`` encodes to the same ids whole and in two parts."""
        reach = max(CUT_CHECK_CHARS, 4 * self.context_chars)
        before, after = text[max(cut - reach, 0) : cut], text[cut : cut + reach]
        return self.encode_ids(before + after) == self.encode_ids(before) + self.encode_ids(after)


def load_tokenizer(source: Any) -> TextTokenizer:
    """A ``TextTokenizer`` from a ``tokenizers.Tokenizer``, a transformers fast tokenizer,
    a path to a ``tokenizer.json`` (or a directory holding one), or a ``TextTokenizer``.

    Raises ``UnsupportedTokenizer`` for anything else, e.g. a slow tokenizer.
    """
    if isinstance(source, TextTokenizer):
        return source
    if isinstance(source, Tokenizer):
        return TextTokenizer(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise UnsupportedTokenizer(f"{path}: no such tokenizer.json")
        return TextTokenizer.from_file(path)
    backend = getattr(source, "backend_tokenizer", None)
    if isinstance(backend, Tokenizer):
        return TextTokenizer(backend)
    raise UnsupportedTokenizer(
        f"{type(source).__name__} is not a Hugging Face fast tokenizer: vqlsp needs "
        "token offsets, which only `tokenizers` (and transformers' *Fast classes) give; "
        "pass a tokenizers.Tokenizer, a fast tokenizer, or a path to tokenizer.json"
    )


def _one_at_a_time(items: list) -> Iterator:
    """The items of ``items``, each taken out of it first, so that each is freed once the
    caller is done with it: an ``Encoding``'s Rust memory is freed holding the GIL (a
    10 MB text's 2.7 M token strings: ~130 ms at once, measured; a piece's ~1 ms)."""
    items.reverse()
    while items:
        yield items.pop()


def _encodable(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text
