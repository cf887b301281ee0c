"""A keystroke's cost on the server's side does not grow with the document (issue 13).

No model and no clock: each section gets a made-up result (one span per sentence), the
document is edited through ``DocumentStore`` as a client would, and the tests count work
(diagnostics built, positions computed), never time. The pushed JSON must equal
diagnostics built from scratch after every edit, and each diagnostic's range must hold
exactly its span's text.
"""

from __future__ import annotations

import json
import random
import sys

import pytest
from lsprotocol import types
from pygls.protocol import default_converter
from pygls.workspace.position_codec import PositionCodec

from vqlsp.analysis.results import HeadOutput, SectionResult, SpanResult, UpdateCost
from vqlsp.lsp import diagnostics
from vqlsp.lsp.core import (
    CLIENT_DIAGNOSTICS_BYTES_PER_S,
    DIAGNOSTICS_SPACING,
    VqlspServer,
    push_spacing,
)
from vqlsp.lsp.diagnostics import (
    full_report_json,
    publish_diagnostics_json,
    section_diagnostics,
    spans_at,
)
from vqlsp.lsp.documents import ChangeReport, DocumentStore
from vqlsp.lsp.options import DiagnosticOptions
from vqlsp.text.segments import segment
from vqlsp.text.tokenizer import load_tokenizer

PARAGRAPH = "The committee met on Tuesday. Café owners wrote letters 👍🏽! Was the plan fair?\n\n"
OPTIONS = DiagnosticOptions(threshold=0.5)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer(tiny_model_dir)


def open_document(tokenizer, paragraphs: int, encoding=types.PositionEncodingKind.Utf16):
    store = DocumentStore(PositionCodec(encoding), section_tokens=48)
    store.set_tokenizer(tokenizer)
    text = "".join(f"{i}. {PARAGRAPH}" for i in range(paragraphs))
    doc = store.open("file:///long.txt", "plaintext", 1, text)
    for k in range(len(doc.sections)):
        analyse(store, doc, k)
    return store, doc


def analyse(store: DocumentStore, doc, k: int) -> None:
    """Section ``k``'s result on its current text, as an update would bring it."""
    job = store.job(doc, k, unit="sentence", position_policy="stable")
    spans = tuple(SpanResult(s.start, s.end, "formal", {"formal": 0.9, "casual": 0.1}, "span", unit="sentence")
                  for s in segment(job.text, "sentence"))
    doc.sections.sections[k].record(SectionResult(job.section, doc.revision, len(job.ids), spans, UpdateCost(False, 0),
                                                  0, 0.0, "incremental"))


def type_at(store: DocumentStore, doc, offset: int, text: str, delete: int = 0) -> None:
    start, end = doc.text.position_at(offset, store.codec), doc.text.position_at(offset + delete, store.codec)
    store.change(doc.uri, doc.version + 1, [types.TextDocumentContentChangePartial(
        range=types.Range(start=start, end=end), text=text)])


def pushed(store: DocumentStore, doc) -> list[dict]:
    params = json.loads(b"".join(publish_diagnostics_json(doc, store.codec, OPTIONS, "sentence")))
    assert params["uri"] == doc.uri and params["version"] == doc.version
    return params["diagnostics"]


def from_scratch(store: DocumentStore, doc) -> list[dict]:
    kept, doc.diagnostics = doc.diagnostics, None
    try:
        return section_diagnostics(doc, store.codec, OPTIONS, "sentence")
    finally:
        doc.diagnostics = kept


def assert_ranges_hold_their_spans(store: DocumentStore, doc, items: list[dict]) -> None:
    spans = doc.current_spans(OPTIONS.threshold)
    assert len(items) == len(spans)
    for item, span in zip(items, spans):
        rng = types.Range(start=types.Position(**item["range"]["start"]), end=types.Position(**item["range"]["end"]))
        assert doc.text.offsets_of(rng, store.codec) == (span.start, span.end)


@pytest.mark.parametrize("encoding", [types.PositionEncodingKind.Utf16, types.PositionEncodingKind.Utf8])
def test_pushed_diagnostics_equal_a_fresh_build_after_every_edit(tokenizer, encoding):
    store, doc = open_document(tokenizer, 12, encoding)
    rng = random.Random(0)
    pushed(store, doc)
    for step in range(60):
        offset = rng.randrange(len(doc.text))
        kind = rng.choice(["char", "char", "newline", "backspace", "lines", "join"])
        if kind == "join":  # a section's first line joins the line before: it now starts inside a line
            start = rng.choice(doc.sections.char_starts[1:-1] or [1])
            type_at(store, doc, start - 1, "", 1)
            type_at(store, doc, start - 3, rng.choice("é😀 "))  # and its first column moves
        elif kind == "char":
            type_at(store, doc, offset, rng.choice("ab .é😀"))
        elif kind == "newline":
            type_at(store, doc, offset, "\n")
        elif kind == "backspace" and offset:
            type_at(store, doc, offset - 1, "", 1)
        else:  # a change across lines: a paste over a stretch
            type_at(store, doc, offset, "Pasted line.\nAnother one. ", min(30, len(doc.text) - offset))
        if step % 3 == 0:  # an update brings the edited sections' results; else results are mapped
            for k, section in enumerate(doc.sections.sections):
                if section.urgent or section.result is None:
                    analyse(store, doc, k)
        items = pushed(store, doc)
        assert items == from_scratch(store, doc)
        assert_ranges_hold_their_spans(store, doc, items)


def test_a_pull_answers_with_the_pushed_diagnostics(tokenizer):
    store, doc = open_document(tokenizer, 12)
    type_at(store, doc, 40, "\nA new line. ")
    analyse(store, doc, 0)
    report = json.loads(b"".join(full_report_json(doc, store.codec, OPTIONS, "sentence", "7.3.1").pieces))
    assert report["kind"] == "full" and report["resultId"] == "7.3.1"
    assert report["items"] == pushed(store, doc) == from_scratch(store, doc)
    typed = default_converter().structure(report, types.RelatedFullDocumentDiagnosticReport)  # what a client reads
    assert [d.code for d in typed.items] == [d["code"] for d in report["items"]] and typed.items
    empty = json.loads(b"".join(full_report_json(None, store.codec, OPTIONS, "sentence", "1.none").pieces))
    assert empty == {"kind": "full", "resultId": "1.none", "items": []}


@pytest.mark.parametrize("paragraphs", [8, 64])
def test_a_keystroke_rebuilds_only_its_own_sections_diagnostics(tokenizer, monkeypatch, paragraphs):
    store, doc = open_document(tokenizer, paragraphs)
    assert len(doc.sections) >= paragraphs // 4
    pushed(store, doc)
    built, positions = [], []
    real_section, real_position_at = diagnostics._section, type(doc.text).position_at

    def section(doc, k, entry, *args):
        new = real_section(doc, k, entry, *args)
        if new is not entry:
            built.append(new.result)
        return new

    monkeypatch.setattr(diagnostics, "_section", section)
    monkeypatch.setattr(type(doc.text), "position_at",
                        lambda self, offset, codec: positions.append(offset) or real_position_at(self, offset, codec))
    middle = doc.sections.char_starts[len(doc.sections) // 2] + 5
    for text in ("x", "\n", "y"):  # a letter, a new line (every later section moves down), a letter
        type_at(store, doc, middle, text)
        k = next(k for k, s in enumerate(doc.sections.sections) if s.urgent)
        analyse(store, doc, k)
        built.clear()
        positions.clear()  # (the edit and the job above found theirs)
        items = pushed(store, doc)
        assert built == [doc.sections.sections[k].result]  # the edited section's, whatever the document's length
        assert len(positions) == 2 * len(built[0].spans)  # its spans' two ends; no other section's
        assert items == from_scratch(store, doc)
        middle += 1


# -- the whole keystroke path on the event loop ------------------------------------------------


class MadeUpWorker:
    """The inference side, made up: each section's result is one span per sentence."""

    engine = "incremental"

    class model:  # noqa: N801 (what ``publish`` reads of a model)
        class cfg:  # noqa: N801
            depth = 2

    def update(self, job, label_last=None):
        spans = tuple(SpanResult(s.start, s.end, "formal", {"formal": 0.9, "casual": 0.1}, "span", unit="sentence")
                      for s in segment(job.text, "sentence"))
        labels = (HeadOutput("alpha", {"alpha": 1.0}, "document"),) if label_last is not None else None
        return SectionResult(job.section, job.revision, len(job.ids), spans, UpdateCost(False, len(job.ids), (1, 1)),
                             1, 1.0, "incremental", labels=labels)

    def document(self, uri, last):
        return (HeadOutput("alpha", {"alpha": 1.0}, "document"),)

    def forget_sections(self, uri, sections):
        pass

    def drop(self, uri):
        pass


@pytest.fixture
def server(tokenizer):
    server = VqlspServer()
    server.log_message = lambda message, kind=None: None
    server.capability = lambda path: False
    server.protocol.set_writer(type("Writer", (), {"write": lambda self, data: None})())
    server.store.set_tokenizer(tokenizer)
    server.store.section_tokens = 48
    server.worker, server.model_state, server.model_labels = MadeUpWorker(), "ready", {"span_unit": "sentence"}
    server.scheduler.request = lambda *args, **kwargs: None  # each keystroke's update is awaited here
    yield server
    server.jobs.close()
    server.text_thread.shutdown(wait=False)


async def keystroke_calls(server, paragraphs: int) -> tuple[int, int]:
    """Python calls on the event loop's thread for one keystroke in the middle of a document
    (its didChange, its update, its diagnostics push), and the document's sections."""
    uri = f"file:///{paragraphs}.txt"
    doc = server.store.open(uri, "plaintext", 1, "".join(f"{i}. {PARAGRAPH}" for i in range(paragraphs)))
    for k in range(len(doc.sections)):
        analyse(server.store, doc, k)
    await server.publish(doc, [], 0)
    offset = doc.sections.char_starts[len(doc.sections) // 2] + 5
    counts = []
    for text in ("x", "y"):  # the first warms up (a section's first diagnostics since the publish)
        calls = 0

        def count(frame, event, arg):
            nonlocal calls
            calls += event == "call"

        sys.setprofile(count)
        try:
            type_at(server.store, doc, offset, text)
            server.changed(ChangeReport(doc))
            await server.run_update(uri)
            if doc.diagnostics_timer is not None:  # (pushes are spaced: push this one now)
                doc.diagnostics_timer.cancel()
                doc.diagnostics_timer = None
                server._push_diagnostics(doc)
        finally:
            sys.setprofile(None)
        offset += 1
        counts.append(calls)
    assert doc.last is not None and doc.last.revision == doc.revision
    return counts[-1], len(doc.sections)


async def test_a_keystrokes_work_on_the_event_loop_does_not_grow_with_the_document(server):
    small, small_sections = await keystroke_calls(server, 6)
    large, large_sections = await keystroke_calls(server, 60)
    assert large_sections >= 8 * small_sections
    # A step per section is allowed (a comprehension, a C call); a Python call per section is not.
    assert large - small < (large_sections - small_sections) / 4, (small, large)


def test_pushes_are_spaced_by_their_cost_and_by_what_the_client_must_read():
    assert push_spacing(0.002, 1_000) == pytest.approx(DIAGNOSTICS_SPACING * 0.002)  # a short document
    assert push_spacing(0.002, 1_500_000) == pytest.approx(1_500_000 / CLIENT_DIAGNOSTICS_BYTES_PER_S)  # a long one


def test_a_hover_reads_the_spans_around_it_only(tokenizer):
    store, doc = open_document(tokenizer, 12)
    type_at(store, doc, doc.sections.char_starts[3] + 4, "\n")  # (a result mapped through a change)
    start = doc.sections.char_starts[6]
    assert doc.text.text[start - 3 : start] == "?\n\n"
    type_at(store, doc, start - 2, "", 2)  # a section's last sentence now ends where the next section starts,
    type_at(store, doc, start - 2, " ")  # whose own first sentence a change touched (no span of it starts there)
    every = doc.current_spans()
    for offset in range(len(doc.text) + 1):
        around = doc.spans_around(offset)
        assert len(around) <= 2 * max(len(s.result.spans) for s in doc.sections.sections)
        assert spans_at(around, offset) == spans_at(every, offset)
