"""A new ``maxFileLength`` touches only the documents that cross it: the others keep their
tokens, sections and revision (re-tokenizing every open document cost seconds on big ones).
On a ``VqlspServer`` without a transport or a model, as in ``test_recovery``."""

from __future__ import annotations

import pytest

from vqlsp.lsp.core import VqlspServer
from vqlsp.text.tokenizer import TextTokenizer

from .harness import PROSE


@pytest.fixture
def server(monkeypatch, default_tokenizer):
    server = VqlspServer()
    server.logged = []
    monkeypatch.setattr(server, "log_message", lambda message, kind=None: server.logged.append(message))
    monkeypatch.setattr(server, "show_once", lambda message, kind=None: server.logged.append(message))
    server.store.set_tokenizer(TextTokenizer(default_tokenizer))
    yield server
    server.jobs.close()
    server.text_thread.shutdown(wait=False)


def test_a_new_limit_retokenizes_only_the_documents_that_cross_it(server, monkeypatch):
    short = server.store.open("file:///short.md", "markdown", 1, PROSE)
    long = server.store.open("file:///long.md", "markdown", 1, PROSE * 4)
    state = lambda doc: (doc.revision, doc.tokens, doc.sections)  # noqa: E731 (compared by identity too)
    kept = state(short)
    analysed: list[str] = []
    monkeypatch.setattr(server, "opened", lambda doc: analysed.append(doc.uri))

    server.apply_settings({"maxFileLength": len(PROSE) * 2})  # the long one goes over it
    assert analysed == [long.uri]
    assert long.tokens is None and long.sections is None and server.store.too_long(long)
    assert state(short) == kept and all(a is b for a, b in zip(state(short), kept))

    revision = long.revision
    server.apply_settings({"maxFileLength": len(PROSE) * 3})  # nobody crosses it: nothing to do
    assert analysed == [long.uri] and long.revision == revision

    server.apply_settings({"maxFileLength": 0})  # no limit: the long one is tokenized again
    assert analysed == [long.uri, long.uri] and long.tokens is not None and long.revision == revision + 1
    assert all(a is b for a, b in zip(state(short), kept))
