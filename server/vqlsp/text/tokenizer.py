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
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from vqlsp.text.run import TokenRun

_SURROGATE = re.compile("[\ud800-\udfff]")
# Texts longer than this are encoded through ``encode_batch``, which releases the GIL
# (``encode`` holds it: 2.1 s for a 2 MB text, measured), so a long document tokenized on
# a thread never stalls the server's event loop. Same encoding either way.
LONG_TEXT_CHARS = 1 << 14

# Characters of context kept on each side of a change even for tokenizers whose
# pre-tokenizer looks only a few characters ahead (GPT-2's contractions read
# three, Llama-3's digit groups three); see ``realign``.
MIN_CONTEXT_CHARS = 8


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

    def encode(self, text: str) -> TokenRun:
        """Tokenize ``text`` from scratch, with spans and word starts (see ``run``)."""
        if not text:
            return TokenRun.empty()
        if len(text) > LONG_TEXT_CHARS:  # ``encode_batch`` lets other threads run meanwhile
            encoding = self._backend.encode_batch([_encodable(text)], add_special_tokens=False)[0]
        else:
            encoding = self._backend.encode(_encodable(text), add_special_tokens=False)
        offsets = encoding.offsets
        starts = [start for start, _ in offsets]
        ends = [end for _, end in offsets]
        word_chars = [0]
        word_tokens = [0]
        # A new pre-token starts a word only where no earlier token reaches past its
        # start, so a cut there leaves every token whole.
        reach = 0
        previous_word: int | None = -1
        for i, word in enumerate(encoding.word_ids):
            start = starts[i]
            if word is not None:
                if word != previous_word and start > word_chars[-1] and start >= reach:
                    word_chars.append(start)
                    word_tokens.append(i)
                previous_word = word
            reach = max(reach, ends[i])
        return TokenRun(text, encoding.ids, starts, ends, word_chars, word_tokens)


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


def _encodable(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text
