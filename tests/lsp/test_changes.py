"""``ChangeApplier``: long ``didChange``s are applied a slice at a time, in order, with the
event loop free between slices; what waits for them sees the client's text."""

from __future__ import annotations

import asyncio

import pytest
from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from vqlsp.lsp.changes import ChangeApplier
from vqlsp.lsp.documents import DocumentStore, UnknownDocument

PARAGRAPH = "The cat said hello. The dog said nothing at all.\n"


def _at(text: str, offset: int) -> types.Position:
    line = text.count("\n", 0, offset)
    return types.Position(line=line, character=offset - (text.rfind("\n", 0, offset) + 1))


def replace_all(text: str, old: str, new: str) -> tuple[list[types.TextDocumentContentChangePartial], str]:
    """Content changes that replace every ``old`` (each range on the text after the ones before,
    as LSP orders them: the last occurrence first, so earlier offsets stay put)."""
    starts = [i for i in range(len(text)) if text.startswith(old, i)]
    changes = [types.TextDocumentContentChangePartial(
        range=types.Range(start=_at(text, i), end=_at(text, i + len(old))), text=new) for i in reversed(starts)]
    return changes, text.replace(old, new)


@pytest.fixture()
def store(tiny_model_dir):
    from vqlsp.text.tokenizer import load_tokenizer

    store = DocumentStore(PositionCodec(types.PositionEncodingKind.Utf16))
    store.set_tokenizer(load_tokenizer(tiny_model_dir))
    return store


class Recorder:
    def __init__(self):
        self.applied: list[tuple[int, str]] = []  # (version, text) as each message finished
        self.unknown: list[str] = []

    def on_applied(self, report) -> None:
        assert not report.document.applying
        self.applied.append((report.document.version, report.document.text.text))

    def on_unknown(self, exc: UnknownDocument) -> None:
        self.unknown.append(str(exc))


async def test_a_replace_all_is_applied_in_slices_and_in_order(store):
    text = PARAGRAPH * 60
    doc = store.open("u", "plaintext", 1, text)
    seen = Recorder()
    applier = ChangeApplier(store, seen.on_applied, seen.on_unknown, slice_changes=8)
    changes, replaced = replace_all(text, "said", "whispered")
    assert len(changes) == 120
    applier.submit("u", 2, changes)
    # a keystroke sent after it queues behind it, although it is short
    applier.submit("u", 3, [types.TextDocumentContentChangePartial(
        range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=0)), text="So. ")])
    assert applier.pending("u") and seen.applied == []
    slices = 0
    while applier.pending("u"):  # the loop runs between slices: count how often we got it back
        if doc.applying:
            slices += 1
        await asyncio.sleep(0)
    assert slices >= 120 // 8 - 1
    assert seen.applied == [(2, replaced), (3, "So. " + replaced)]
    assert doc.text.text == "So. " + replaced and not doc.applying
    assert doc.tokens.ids == store.tokenizer.encode_ids(doc.text.text)
    assert applier.sliced == 1


async def test_short_changes_are_applied_at_once(store):
    store.open("u", "plaintext", 1, PARAGRAPH)
    seen = Recorder()
    applier = ChangeApplier(store, seen.on_applied, seen.on_unknown, slice_changes=8)
    changes, replaced = replace_all(PARAGRAPH, "said", "says")
    applier.submit("u", 2, changes)
    assert seen.applied == [(2, replaced)] and not applier.pending("u")
    applier.submit("nope", 1, changes)
    assert seen.unknown == ["document nope is not open"]


async def test_waiting_for_the_changes_sees_the_clients_text(store):
    text = PARAGRAPH * 40
    doc = store.open("u", "plaintext", 1, text)
    seen = Recorder()
    applier = ChangeApplier(store, seen.on_applied, seen.on_unknown, slice_changes=4)
    changes, replaced = replace_all(text, "cat", "tiger")
    applier.submit("u", 2, changes)
    await asyncio.wait_for(applier.applied("u"), 30)
    assert doc.text.text == replaced and doc.version == 2
    await applier.applied("never-opened")  # nothing pending: returns at once


async def test_a_close_drops_what_is_pending(store):
    text = PARAGRAPH * 40
    doc = store.open("u", "plaintext", 1, text)
    seen = Recorder()
    applier = ChangeApplier(store, seen.on_applied, seen.on_unknown, slice_changes=4)
    changes, _ = replace_all(text, "dog", "wolf")
    applier.submit("u", 2, changes)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    applier.discard("u")
    store.close("u")
    await asyncio.wait_for(applier.applied("u"), 5)
    for _ in range(5):
        await asyncio.sleep(0)
    assert seen.applied == [] and not applier.pending("u")
    assert "wolf" in doc.text.text and "dog" in doc.text.text  # stopped half way, and stays so
    reopened = store.open("u", "plaintext", 3, text)
    applier.submit("u", 4, changes)
    await applier.applied("u")
    assert seen.applied[-1][0] == 4 and reopened.text.text == text.replace("dog", "wolf")


async def test_a_long_text_is_indexed_off_the_loop_and_its_changes_wait_for_it(monkeypatch):
    """A text over ``INDEX_OFF_LOOP_CHARS`` opens once its line index is built on the text thread:
    meanwhile its didChanges queue (none is lost as 'not open') and requests wait; a close
    before the open is done means it never happens."""
    import threading

    from vqlsp.lsp import core
    from vqlsp.lsp.core import VqlspServer

    monkeypatch.setattr(core, "INDEX_OFF_LOOP_CHARS", len(PARAGRAPH))
    server = VqlspServer()
    server.logged = []
    server.log_message = lambda message, kind=None: server.logged.append(message)
    text = PARAGRAPH * 3
    try:
        busy = threading.Event()
        server.text_thread.submit(busy.wait, 30)  # the text thread is busy: the index waits
        server.open_document(types.TextDocumentItem(uri="u", language_id="plaintext", version=1, text=text))
        assert "u" not in server.store and server.changes.pending("u")
        changes, replaced = replace_all(text, "cat", "tiger")
        server.changes.submit("u", 2, changes)  # queued behind the open
        requested = asyncio.create_task(server.changes.applied("u"))  # what a hover does first
        await asyncio.sleep(0)
        assert not requested.done()
        busy.set()
        await asyncio.wait_for(requested, 30)
        doc = server.store.get("u")
        assert doc.text.text == replaced and doc.version == 2 and doc.text.line_count == 4
        assert not any("not open" in m for m in server.logged)

        busy.clear()
        server.text_thread.submit(busy.wait, 30)
        server.open_document(types.TextDocumentItem(uri="w", language_id="plaintext", version=1, text=text))
        server.changes.discard("w")  # what didClose does while the open is pending
        busy.set()
        await asyncio.wait_for(server.changes.applied("w"), 30)
        await asyncio.wait_for(asyncio.wrap_future(server.text_thread.submit(lambda: None)), 30)
        for _ in range(5):
            await asyncio.sleep(0)
        assert "w" not in server.store
    finally:
        server.jobs.close()
        server.text_thread.shutdown(wait=False)
