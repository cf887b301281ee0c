"""``lsp.footprint``: the bytes a document's own structures hold (``textBytes``) are what
they take, each object counted once, and nothing shared with other documents."""

from __future__ import annotations

import gc
import random
import sys
import tracemalloc
from array import array

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from vqlsp.bench.text_bench import make_prose
from vqlsp.lsp.documents import DocumentStore
from vqlsp.lsp.footprint import deep_bytes, document_bytes
from vqlsp.text.tokenizer import TextTokenizer


def test_deep_bytes_counts_each_object_once_and_leaves_classes_out():
    shared = "x" * 1000
    values = array("i", range(1000))
    assert deep_bytes([[shared, shared]]) == sys.getsizeof([shared, shared]) + sys.getsizeof(shared)
    assert deep_bytes([values]) == sys.getsizeof(values) >= 4000
    seen: set[int] = set()
    assert deep_bytes([shared], seen) > 0 and deep_bytes([shared], seen) == 0  # already counted

    class Holder:
        def __init__(self):
            self.kind, self.text = Holder, shared

    holder = Holder()
    assert deep_bytes([holder]) == sum(map(sys.getsizeof, (holder, holder.__dict__, "kind", "text", shared)))


def test_a_documents_bytes_are_what_building_it_left_allocated(default_tokenizer):
    """Within a fifth of what ``tracemalloc`` sees the document take (the record, its line
    index, tokens and sections), and the tokenizer (shared) is not counted."""
    text = make_prose(300_000, random.Random(0))
    store = DocumentStore(PositionCodec(types.PositionEncodingKind.Utf16))
    store.set_tokenizer(TextTokenizer(default_tokenizer))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        doc = store.open("file:///long.txt", "plaintext", 1, text)
        assert doc.tokens is None and doc.tokenizing  # long: tokenized apart, as the server does
        from vqlsp.lsp.documents import tokenize_and_cut

        store.attach(doc, doc.tokenizing, *tokenize_and_cut(text, store.tokenizer, store.section_tokens, "plaintext"))
        gc.collect()
        taken = tracemalloc.get_traced_memory()[0] - before + sys.getsizeof(text)  # the text came before
    finally:
        tracemalloc.stop()
    parts = document_bytes(doc)
    assert parts["total"] == parts["text"] + parts["tokens"] + parts["sections"] + parts["diagnostics"]
    assert 0.8 * taken <= parts["total"] <= 1.2 * taken, (parts, taken)
    assert parts["tokens"] > 4 * 3 * len(doc.tokens)  # ids, starts and ends: 4 bytes each per token
    assert parts["text"] >= sys.getsizeof(text)  # the line index holds the text it was given
