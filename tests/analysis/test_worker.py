"""The analysis worker over a sectioned document equals a dense forward of its sections.

Random edit sequences (several content changes per step, distant ones too) on a
document cut into tiny sections, with the tiny checkpoint of the server tests:
after every step, the worker's jobs (edits for edited sections, chunked builds
for new ones, settles) leave every section's state equal to a fresh dense
forward of that section's tokens — the document label (pooled over sections)
and every span label. The incremental == dense invariant, per section.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from lsp.harness import PROSE, build_tiny_checkpoint
from vqlsp.analysis.analyzers import DenseAnalyzer
from vqlsp.analysis.reference import dense_document
from vqlsp.analysis.worker import AnalysisWorker, token_spans
from vqlsp.lsp.documents import Document, DocumentStore
from vqlsp.text.segments import segment

from .test_sections import WORDS, _change


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from vqlsp.model.registry import load_model, load_tokenizer
    from vqlsp.text.tokenizer import TextTokenizer

    directory = build_tiny_checkpoint(tmp_path_factory.mktemp("tiny-analysis"))
    return load_model(directory, "cpu"), TextTokenizer(load_tokenizer(directory))


def open_prose(tokenizer, section_tokens: int) -> tuple[DocumentStore, Document]:
    """A store cutting sections of ``section_tokens`` and ``PROSE`` opened in it."""
    store = DocumentStore(PositionCodec(types.PositionEncodingKind.Utf32), section_tokens=section_tokens)
    store.set_tokenizer(tokenizer)
    return store, store.open("file:///w.txt", "plaintext", 1, PROSE)


@st.composite
def steps(draw):
    return draw(st.lists(
        st.tuples(st.lists(st.tuples(st.floats(0, 1), st.integers(0, 15), st.lists(st.sampled_from(WORDS), max_size=3)),
                           min_size=1, max_size=3),
                  st.sampled_from(["round", "round", "settle", "none"])),
        min_size=1, max_size=6,
    ))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps(), st.sampled_from(["exact", "stable"]), st.integers(4, 16), st.randoms(use_true_random=False))
def test_sections_equal_dense(tiny, sequence, policy, chunk, rng):
    """Builds also give way at random layers (as to a keystroke) and resume where they stopped."""
    model, tokenizer = tiny
    store, doc = open_prose(tokenizer, 16)
    worker = AnalysisWorker(model, 1 << 30)

    def build(settle: bool) -> None:
        for k, section in enumerate(doc.sections.sections):
            if section.result is None and not section.urgent or settle and section.result and section.result.drift:
                job = store.job(doc, k, unit="sentence", position_policy=policy, take=False)
                give_way = (lambda: rng.random() < 0.3)  # noqa: E731
                while (step := worker.build_step(job, chunk, settle=settle, give_way=give_way)).result is None:
                    assert not step.abandoned
                store_take = doc.sections.take(k)
                assert store_take is None or store_take == [] or settle
                section.record(step.result)

    build(False)
    for version, (changes, action) in enumerate(sequence, start=2):
        for where, length, words in changes:
            n = len(doc.text.text)
            start = int(where * n)
            store.change(doc.uri, version, [_change(doc.text.text, start, min(n, start + length), " ".join(words))])
        worker.forget_sections(doc.uri, doc.forgotten)
        doc.forgotten = []
        if action == "none":
            continue  # edits stay pending: the next round composes them
        for k, section in enumerate(doc.sections.sections):
            if section.urgent:
                section.record(worker.update(store.job(doc, k, unit="sentence", position_policy=policy)))
        build(action == "settle")
        _check(model, worker, doc, exact=policy == "exact" or action == "settle")


def _check(model, worker, doc, *, exact: bool) -> None:
    bounds = doc.sections.bounds()
    ids = doc.tokens.ids
    got = worker.document(doc.uri, doc.sections.sections[-1].id)[0]
    assert [s.result.tokens for s in doc.sections.sections] == [b - a for a, b in bounds]
    if not exact:
        return  # drifted position ids: the engine's own tests compare those with dense on the same ids
    want = dense_document(model, ids, bounds)
    assert got.probabilities == pytest.approx(want, abs=1e-4)
    for section, (a, b), c0 in zip(doc.sections.sections, bounds, doc.sections.char_starts):
        text = doc.text.text[c0 : c0 + section.chars]
        spans = doc.tokens.spans_slice(a, b)
        found = token_spans([(s.start, s.end) for s in segment(text, "sentence")],
                            [s - c0 for s, _ in spans], [e - c0 for _, e in spans])
        dense = DenseAnalyzer(model, ids[a:b]).spans([(t0, t1) for _, _, t0, t1 in found])
        assert [(s.start, s.end) for s in section.result.spans] == [(cs, ce) for cs, ce, _, _ in found]
        for mine, theirs in zip(section.result.spans, dense):
            assert mine.probabilities == pytest.approx(theirs.probabilities, abs=1e-4)


def test_a_build_gives_way_after_one_layer_and_resumes_there(tiny):
    """``give_way`` is asked after every layer (and once the chunk's rows are placed): a build
    told to give way stops after one such step (what a keystroke waits for), and the next call
    goes on from there."""
    model, tokenizer = tiny
    store, doc = open_prose(tokenizer, 64)
    worker = AnalysisWorker(model, 1 << 30)
    job = store.job(doc, 0, unit="sentence", position_policy="exact", take=False)
    chunk, depth = 8, model.cfg.depth
    asked: list[bool] = []

    def busy() -> bool:
        asked.append(True)
        return True

    steps = []
    while (step := worker.build_step(job, chunk, give_way=busy)).result is None:
        steps.append(step.built_tokens)
    layers = (1 + depth) * -(-len(job.ids) // chunk)  # every chunk placed, then through every layer
    assert len(asked) == layers == len(steps)  # one step per call (and a last call to finish)
    assert steps[: 1 + depth] == [0] * (1 + depth) and steps[1 + depth] == chunk  # a chunk counts once done
    assert step.result.tokens == len(job.ids)
    got = worker.document(doc.uri, job.section)[0]
    assert got.probabilities == pytest.approx(dense_document(model, job.ids, [(0, len(job.ids))]), abs=1e-4)
    # with nothing waiting, a section is built in one call
    asked.clear()
    worker.drop(doc.uri)
    assert worker.build_step(job, chunk, give_way=lambda: asked.append(False) or False).result is not None
    assert len(asked) == layers


def test_a_build_in_progress_counts_in_the_memory_budget(tiny):
    """A section's state being built (a first pass, a settle) is counted beside its live one,
    and evicts the least recently used sections when the budget is passed; once installed,
    the section counts its new state only."""
    model, tokenizer = tiny
    store, doc = open_prose(tokenizer, 64)
    first, second = (store.job(doc, k, unit="sentence", position_policy="exact", take=False) for k in (0, 1))
    worker = AnalysisWorker(model, 1 << 30)
    worker.build_step(first, 8)
    one_section = worker.budget.total_bytes
    assert one_section == worker.stats(doc.uri)["state_bytes"] > 0
    chunk = 8
    while worker.build_step(second, chunk, give_way=lambda: True).built_tokens < 2 * chunk:
        pass  # one layer a call, until two chunks are through every layer
    building = worker.documents[doc.uri].sections[second.section].build
    assert building is not None and len(second.ids) > 2 * chunk
    # counted when its last chunk was done (the next one may have grown it since)
    assert one_section < worker.budget.total_bytes <= one_section + building.analyzer.state_bytes()
    worker.set_budget(one_section)  # the build in progress is the most recent: the first section goes
    assert worker.stats(doc.uri)["cachedSections"] == 0 and worker.evictions == 1
    assert worker.build_step(second, chunk).result is not None
    assert worker.budget.total_bytes == worker.stats(doc.uri)["state_bytes"]


def test_evictions_hand_memory_back_from_the_next_build_step(tiny):
    """Once evictions freed ``release_after_bytes``, the next build step calls ``release_memory``
    (and only then: an update, the keystroke path, never does)."""
    model, tokenizer = tiny
    store, doc = open_prose(tokenizer, 32)
    jobs = [store.job(doc, k, unit="sentence", position_policy="exact", take=False) for k in range(3)]
    released: list[int] = []
    worker = AnalysisWorker(model, 1, release_memory=lambda: released.append(worker.evicted_bytes),
                            release_after_bytes=1)
    worker.build_step(jobs[0], 8)
    first = worker.budget.total_bytes
    assert worker.update(jobs[1]).tokens == len(jobs[1].ids)  # evicts the first section's state
    assert worker.evictions == 1 and worker.evicted_bytes == first and released == []
    worker.build_step(jobs[2], 8)
    assert released == [0] and worker.stats(doc.uri)["memory_releases"] == 1  # counted from zero again
    assert worker.evicted_bytes > 0  # the third evicted the second: due at the next step


def test_a_warm_up_builds_a_missing_state_once_and_pins_it(tiny):
    """``warm``: the section the cursor moved into gets a state (a settle's kind: on exact ids,
    equal to dense) if it has none, and is kept first under the budget; with one, nothing runs."""
    model, tokenizer = tiny
    store, doc = open_prose(tokenizer, 16)
    worker = AnalysisWorker(model, 1 << 30)
    job = store.job(doc, 1, unit="sentence", position_policy="exact", take=False)
    step = worker.warm(job, 8)
    assert step.result is not None and step.result.settled and step.result.changed_tokens == 0
    assert worker.focus[doc.uri] == job.section and (doc.uri, job.section) in worker.budget.pinned
    got = worker.document(doc.uri, job.section)[0]
    assert got.probabilities == pytest.approx(dense_document(model, job.ids, [(0, len(job.ids))]), abs=1e-4)
    again = worker.warm(job, 8)
    assert again.abandoned and again.result is None
    other = store.job(doc, 0, unit="sentence", position_policy="exact", take=False)
    worker.warm(other, 8)  # the focus moves: the first section is no longer pinned
    assert worker.budget.pinned == {(doc.uri, other.section)}
