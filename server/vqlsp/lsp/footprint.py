"""What an open document's own structures hold, in bytes: the memory the state budget leaves out.

The budget (``analysis.memory``) counts the engine's section states only. Beside them
the server keeps, per document, its text (the line index's chunks, and the whole text
while it is cached), the token store (ids, spans and word starts, ``array('i')``
tables), the section records with their last results, and the diagnostics as last
pushed. ``document_bytes`` measures them by walking those objects (``sys.getsizeof`` of
each object reached, each counted once), so it is computed on request only
(``vqlsp.documentFootprint``' ``textBytes``), never per keystroke: a 10 MB document's
walk visits a few hundred thousand objects.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable
from typing import Any

from .documents import Document

_LEAVES = (str, bytes, bytearray, int, float, complex, bool, array, type(None))


def deep_bytes(roots: Iterable[Any], seen: set[int] | None = None) -> int:
    """Bytes of ``roots`` and everything they reach through containers, dataclass fields and
    ``__dict__``s, each object counted once (``seen``: ids already counted, shared between
    calls so that parts never count an object twice). Classes, modules and functions are
    not entered: what a document refers to there is shared by all documents."""
    seen = set() if seen is None else seen
    total = 0
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type) or callable(obj):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, _LEAVES):
            continue
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        else:
            fields = getattr(obj, "__dict__", None)
            if fields is not None:
                stack.append(fields)
            for name in getattr(type(obj), "__slots__", ()):
                if hasattr(obj, name):
                    stack.append(getattr(obj, name))
    return total


def document_bytes(doc: Document) -> dict[str, int]:
    """Bytes per part of ``doc``'s own structures, and their ``total``: ``text`` (the line
    index: chunks, line starts, the cached whole text), ``tokens`` (the token store, and the
    whole text it caches when that is not the line index's), ``sections`` (records, pending
    edits, last results), ``diagnostics`` (the pushed diagnostics' cache)."""
    seen = {id(doc.tokens.tokenizer)} if doc.tokens is not None else set()  # shared by all documents
    parts = {
        "text": deep_bytes([doc.text], seen),
        "tokens": deep_bytes([doc.tokens], seen),
        "sections": deep_bytes([doc.sections.sections, doc.sections.token_starts, doc.sections.char_starts]
                               if doc.sections is not None else [], seen),
        "diagnostics": deep_bytes([doc.diagnostics, doc.ignore_scan, doc.untokenized], seen),
    }
    return {**parts, "total": sum(parts.values())}
