"""Unit tests of the server's domain pieces, without a server: options, segments, scheduler,
memory budget, the job queue, the worker's bookkeeping, and the analyzers against each other."""

from __future__ import annotations

import asyncio

import pytest
import torch

from vqlsp.analysis.analyzers import DenseAnalyzer, document_output, open_analyzer
from vqlsp.analysis.memory import MemoryBudget
from vqlsp.analysis.sections import nearest
from vqlsp.analysis.worker import token_spans
from vqlsp.engine.edits import TokenEdit, apply_edits
from vqlsp.lsp.options import DiagnosticOptions, Options, changed_fields, parse_options
from vqlsp.lsp.scheduler import Scheduler
from vqlsp.text.segments import paragraphs, segment, sentences

from .fake_clock import FakeClock

# -- options ---------------------------------------------------------------------------------


def test_options_defaults_camel_case_and_problems():
    assert parse_options(None) == (Options(), [])
    options, problems = parse_options({
        "model": "/m", "debounceMs": 10, "positionPolicy": "exact", "settleMs": 0, "sectionTokens": 100,
        "languages": ["markdown"], "diagnostics": {"threshold": 0.5, "severity": "hint", "unit": "paragraph"},
    })
    assert problems == []
    assert options == Options(
        model="/m", debounce_ms=10, position_policy="exact", settle_ms=0, section_tokens=100, languages=("markdown",),
        diagnostics=DiagnosticOptions(threshold=0.5, severity="hint", unit="paragraph"),
    )
    # The whole settings tree is accepted too.
    assert parse_options({"vqlsp": {"device": "cpu"}})[0].device == "cpu"


@pytest.mark.parametrize("raw, needle", [
    ({"nope": 1}, "unknown option 'nope'"),
    ({"diagnostics": {"colour": "red"}}, "unknown option 'diagnostics.colour'"),
    ({"debounceMs": "fast"}, "invalid option 'debounceMs'"),
    ({"debounceMs": True}, "invalid option 'debounceMs'"),
    ({"sectionTokens": 100.5}, "not an integer"),
    ({"diagnostics": {"threshold": 2}}, "outside [0.0, 1.0]"),
    ({"diagnostics": {"severity": "fatal"}}, "'fatal' is not one of"),
    ({"languages": "markdown"}, "list of languageIds"),
    ({"diagnostics": 3}, "must be an object"),
    ([1, 2], "must be an object"),
])
def test_bad_options_fall_back_to_defaults(raw, needle):
    options, problems = parse_options(raw)
    assert len(problems) == 1 and needle in problems[0], problems
    assert options == Options()


def test_settings_payload():
    from vqlsp.lsp.options import settings_payload

    assert settings_payload({"vqlsp": {"debounceMs": 1}}) == {"debounceMs": 1}
    assert settings_payload({"debounceMs": 1}) == {"debounceMs": 1}
    assert settings_payload({"vqlsp": None}) == {}
    assert settings_payload({"python": {"x": 1}}) is None and settings_payload(None) is None


def test_changed_fields():
    old = Options()
    new = Options(debounce_ms=5, diagnostics=DiagnosticOptions(threshold=0.1))
    assert changed_fields(old, new) == {"debounce_ms", "diagnostics.threshold"}


# -- segments --------------------------------------------------------------------------------


def test_sentences_and_paragraphs():
    text = "  Dr. Smith met J. R. Tolkien. Then, e.g. on Monday, they left!  \n\nA new para?\nYes…  "
    got = [text[s.start : s.end] for s in sentences(text)]
    assert got == ["Dr. Smith met J. R. Tolkien.", "Then, e.g. on Monday, they left!", "A new para?", "Yes…"]
    assert [text[p.start : p.end] for p in paragraphs(text)] == [
        "Dr. Smith met J. R. Tolkien. Then, e.g. on Monday, they left!", "A new para?\nYes…",
    ]
    assert sentences("") == [] and paragraphs(" \n\n \n") == []
    quoted = 'He said "stop." Then left. 3.5 is a number.'
    assert [quoted[s.start : s.end] for s in sentences(quoted)] == ['He said "stop."', "Then left.", "3.5 is a number."]
    with pytest.raises(ValueError):
        segment("x", "word")


def test_segments_use_code_points():
    text = "😀 Ünïcödé here. 日本語です。 Next."
    spans = sentences(text)
    assert text[spans[0].start : spans[0].end] == "😀 Ünïcödé here."
    assert spans[-1].end == len(text)


# -- scheduler (on a fake clock: no real time passes) -------------------------------------------


async def test_scheduler_coalesces_and_never_overlaps():
    clock, started, running, overlaps = FakeClock(), [], 0, 0
    gate = asyncio.Event()

    async def run(key):
        nonlocal running, overlaps
        running += 1
        overlaps += running > 1
        started.append(key)
        await gate.wait()
        running -= 1

    scheduler = Scheduler(run, debounce=0.01, clock=clock)
    for _ in range(10):
        scheduler.request("a")
    await clock.advance(0.009)
    assert started == []  # still within the debounce
    await clock.advance(0.002)
    assert started == ["a"]
    for _ in range(10):  # while in flight: only marks it dirty
        scheduler.request("a")
    await clock.advance(1.0)
    assert started == ["a"] and scheduler.busy("a")
    gate.set()
    await clock.advance(0.02)
    assert started == ["a", "a"] and overlaps == 0 and scheduler.started == 2
    await clock.advance(0.02)
    assert not scheduler.busy("a")


async def test_scheduler_gives_a_continuous_typist_an_update_every_max_wait():
    """A writer who never pauses for the debounce still gets updates, one per ``max_wait``;
    an update slower than that is followed at once by the next (never a pile-up)."""
    clock, starts = FakeClock(), []
    took = 0.0

    async def run(key):
        starts.append(clock.time())
        await clock.sleep(took)

    scheduler = Scheduler(run, debounce=0.05, max_wait=0.1, clock=clock)
    for _ in range(50):  # a keystroke every 20 ms for a second
        scheduler.request("a")
        await clock.advance(0.02)
    # max_wait counts from the first change not yet covered: at most one keystroke later.
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) >= 8 and starts[0] == pytest.approx(0.1) and all(0.1 - 1e-9 <= g <= 0.12 + 1e-9 for g in gaps)
    starts.clear()
    took = 0.3  # an update slower than the typist
    for _ in range(50):
        scheduler.request("a")
        await clock.advance(0.02)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert gaps and all(abs(g - 0.3) < 1e-9 for g in gaps)  # back to back: each covers what came meanwhile


async def test_scheduler_calls_on_quiet_once_a_document_rests():
    clock, quiet = FakeClock(), []

    async def run(key):
        pass

    scheduler = Scheduler(run, debounce=0, on_quiet=quiet.append, quiet=0.05, clock=clock)
    scheduler.request("a", immediate=True)
    await clock.advance(0.02)
    scheduler.request("a", immediate=True)  # a change before the quiet time: the timer restarts
    await clock.advance(0.049)
    assert quiet == []
    await clock.advance(0.002)
    assert quiet == ["a"]
    await clock.advance(1.0)
    assert quiet == ["a"]  # once per rest, not periodically
    scheduler.request("b", immediate=True)
    await clock.advance(0.01)
    scheduler.forget("b")  # closed: no callback
    scheduler.quiet = 0  # 0: never
    scheduler.request("c", immediate=True)
    await clock.advance(1.0)
    assert quiet == ["a"]


async def test_scheduler_survives_failing_updates():
    clock, calls = FakeClock(), []

    async def run(key):
        calls.append(key)
        raise RuntimeError("boom")

    scheduler = Scheduler(run, debounce=0, clock=clock)
    scheduler.request("a", immediate=True)
    await clock.advance(0.01)
    scheduler.request("a", immediate=True)
    await clock.advance(0.01)
    assert calls == ["a", "a"] and not scheduler.busy("a")


# -- the inference thread's queue --------------------------------------------------------------


async def test_job_queue_runs_the_typed_document_before_background_work():
    """Background work queued in chunks gives way: a foreground job waits for the one job
    already running, then runs before every queued background job; within a priority, FIFO."""
    import threading

    from vqlsp.lsp.jobs import BACKGROUND, FOREGROUND, JobQueue

    queue, order, running = JobQueue(), [], threading.Event()
    release = threading.Event()

    def job(name: str, block: bool = False) -> str:
        if block:
            running.set()
            release.wait(5)
        order.append(name)
        return name

    first = queue.submit(BACKGROUND, job, "bg0", block=True)
    running.wait(5)
    rest = [queue.submit(BACKGROUND, job, f"bg{i}") for i in range(1, 6)]
    keystroke = queue.submit(FOREGROUND, job, "fg")
    assert queue.queued == {FOREGROUND: 1, BACKGROUND: 5}
    release.set()
    assert await asyncio.wait_for(asyncio.wrap_future(keystroke), 5) == "fg"
    await asyncio.wait_for(asyncio.gather(*(asyncio.wrap_future(f) for f in [first, *rest])), 5)
    assert order == ["bg0", "fg", "bg1", "bg2", "bg3", "bg4", "bg5"]
    # A job whose waiter went away before it started never runs; errors reach the waiter.
    gate = queue.submit(BACKGROUND, job, "gate", block=True)
    cancelled = queue.submit(BACKGROUND, job, "never")
    assert cancelled.cancel()
    failing = queue.submit(FOREGROUND, lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        await asyncio.wait_for(asyncio.wrap_future(failing), 5)
    await asyncio.wait_for(asyncio.wrap_future(gate), 5)
    assert "never" not in order
    queue.close()
    with pytest.raises(RuntimeError):
        queue.submit(FOREGROUND, job, "late")


# -- memory budget ---------------------------------------------------------------------------


def test_memory_budget_lru():
    budget = MemoryBudget(100)
    assert budget.touch("a", 40) == []
    assert budget.touch("b", 40) == []
    assert budget.touch("a", 40) == []  # a is now the most recent
    assert budget.touch("c", 40) == ["b"]  # the least recently used goes first
    budget.forget("b")
    assert budget.touch("big", 500) == ["a", "c"]  # never the one being touched
    budget.forget("a"), budget.forget("c")
    assert budget.total_bytes == 500 and budget.over_budget() == ["big"]


def test_memory_budget_evicts_pinned_keys_last():
    budget = MemoryBudget(100)
    budget.touch("typed", 40)
    budget.pin("typed")
    assert budget.touch("b", 40) == []
    assert budget.touch("c", 40) == ["b"]  # not the older, pinned one
    budget.forget("b")
    assert budget.touch("big", 90) == ["c", "typed"]  # pinned keys go once nothing else is left
    budget.pin("typed", False)
    assert budget.over_budget(keep="big") == ["typed", "c"]  # unpinned: LRU order again
    budget.forget("typed")
    assert "typed" not in budget.pinned


def test_nearest_index_prefers_the_later_one_at_equal_distance():
    assert [nearest([2, 5, 9], k) for k in (0, 2, 3, 4, 7, 8, 20)] == [2, 2, 2, 5, 9, 9, 9]
    assert nearest([1, 3], 2) == 3 and nearest([4], 0) == 4


# -- the worker's bookkeeping ----------------------------------------------------------------


def test_token_spans():
    starts, ends = (0, 3, 6, 6, 10), (3, 6, 7, 7, 12)  # token 2 and 3 share a character
    assert token_spans([(0, 6), (6, 7), (8, 12), (20, 30)], starts, ends) == [
        (0, 6, 0, 2), (6, 7, 2, 4), (8, 12, 4, 5),
    ]


# -- analyzers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    from vqlsp.model.registry import load_model

    return load_model(tiny_model_dir, "cpu")


def test_engine_analyzer_equals_dense(tiny_model):
    torch.manual_seed(0)
    ids = torch.randint(0, 300, (60,)).tolist()
    engine, cost = open_analyzer(tiny_model, ids, "exact")
    assert engine.kind == "incremental" and cost.full_pass and cost.reused_fraction == 0
    reused = []
    for edit in (TokenEdit(10, 12, (5, 6, 7)), TokenEdit(59, 61, ()), TokenEdit(0, 0, (1,))):
        ids = apply_edits(ids, [edit])
        cost = engine.apply([edit])
        assert engine.ids == tuple(ids) and not cost.full_pass
        reused.append(cost.reused_fraction)
    # Rows before an edit are reused; deleting the tail changes nothing; with exact
    # positions an insertion at 0 moves every row.
    assert 0 < reused[0] < 1 and reused[1] == 1 and reused[2] == 0
    dense = DenseAnalyzer(tiny_model, ids)
    spans = [(0, 10), (10, 40), (40, len(ids))]
    spans_e, spans_d = engine.spans(spans), dense.spans(spans)
    doc_e = document_output(tiny_model, [(len(ids), engine.pooled())])
    doc_d = document_output(tiny_model, [(len(ids), dense.pooled())])
    assert doc_e.label == doc_d.label and len(spans_e) == 3
    for a, b in zip([doc_e, *spans_e], [doc_d, *spans_d]):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-4)
    assert engine.state_bytes() > dense.state_bytes() > 0


def test_empty_document_gives_the_prior(tiny_model):
    prior = torch.softmax(tiny_model.document_head.linear.bias.float(), -1).tolist()
    for analyzer, _ in (open_analyzer(tiny_model, []), open_analyzer(tiny_model, [], dense=True)):
        document = document_output(tiny_model, [(0, analyzer.pooled())])
        assert list(document.probabilities.values()) == pytest.approx(prior) and analyzer.spans([]) == []
    assert list(document_output(tiny_model, []).probabilities.values()) == pytest.approx(prior)


def test_document_head_pools_sections_like_one_sequence(tiny_model):
    """Mean pooling over sections is the token-weighted mean of their means: the same as the
    head over all their states at once (what ``analysis.reference`` computes)."""
    from vqlsp.analysis.reference import dense_document

    torch.manual_seed(1)
    ids = torch.randint(0, 300, (50,)).tolist()
    cuts = [(0, 12), (12, 40), (40, 50)]
    pooled = [(b - a, DenseAnalyzer(tiny_model, ids[a:b]).pooled()) for a, b in cuts]
    got = document_output(tiny_model, pooled).probabilities
    assert got == pytest.approx(dense_document(tiny_model, ids, cuts), abs=1e-5)
    assert got != pytest.approx(dense_document(tiny_model, ids, [(0, 50)]), abs=1e-5)


# -- documents -------------------------------------------------------------------------------


def _change(line0, ch0, line1, ch1, text):
    from lsprotocol import types

    return types.TextDocumentContentChangePartial(
        range=types.Range(start=types.Position(line=line0, character=ch0), end=types.Position(line=line1, character=ch1)),
        text=text,
    )


def test_document_store_changes_jobs_and_desync(tiny_model_dir):
    from lsprotocol import types
    from pygls.workspace.position_codec import PositionCodec

    from vqlsp.lsp.documents import DocumentStore, UnknownDocument
    from vqlsp.text.tokenizer import load_tokenizer

    store = DocumentStore(PositionCodec(types.PositionEncodingKind.Utf16))
    store.set_tokenizer(load_tokenizer(tiny_model_dir))  # its tokenizer.json
    tokenizer = store.tokenizer
    doc = store.open("u", "plaintext", 1, "Hello 😀 world.\nSecond line.")
    # UTF-16: the emoji is two units, so character 9 is after "😀 " ... "w".
    report = store.change("u", 2, [_change(0, 9, 0, 14, "there")])
    assert doc.text.text == "Hello 😀 there.\nSecond line." and report.warnings == ()
    assert doc.tokens.ids == tokenizer.encode_ids(doc.text.text)
    job = store.job(doc, 0, unit="sentence", position_policy="stable")
    # Opened documents start with a full pass (no edit batches); later jobs carry one per change.
    assert job.ids == tuple(doc.tokens.ids) and job.text == doc.text.text and job.batches is None
    store.change("u", 2, [_change(0, 0, 0, 0, "Oh. ")])
    store.change("u", 2, [_change(0, 0, 0, 4, "")])
    assert len(store.job(doc, 0, unit="sentence", position_policy="stable").batches) == 2
    assert store.job(doc, 0, unit="sentence", position_policy="stable").batches == ()
    # Out of range: clamped per the spec, reported.
    report = store.change("u", 3, [_change(0, 99, 0, 99, "!"), _change(9, 0, 9, 0, "\nEnd.")])
    assert doc.text.text == "Hello 😀 there.!\nSecond line.\nEnd." and len(report.warnings) == 2
    # Older version: applied in arrival order, warned.
    report = store.change("u", 2, [_change(0, 0, 0, 0, "> ")])
    assert "not newer" in report.warnings[0] and doc.text.text.startswith("> Hello")
    # Reversed range: desynced; incremental changes are skipped; the whole text resyncs.
    revision = doc.revision
    report = store.change("u", 4, [_change(1, 0, 0, 0, "x")])
    assert report.desynced_now and doc.desynced and doc.revision == revision + 1
    store.change("u", 5, [_change(0, 0, 0, 0, "lost")])
    report = store.change("u", 6, [types.TextDocumentContentChangeWholeDocument(text="Fresh \x00 text")])
    assert report.resynced_now and doc.text.text == "Fresh \x00 text" and doc.binary
    assert doc.tokens.ids == tokenizer.encode_ids("Fresh \x00 text")
    store.change("u", 7, [_change(0, 6, 0, 8, "")])
    assert not doc.binary
    with pytest.raises(UnknownDocument):
        store.change("nope", 1, [])
    store.close("u")
    assert "u" not in store


@pytest.mark.parametrize(("what", "change"), [
    ("insert between the halves", (0, 7, 0, 7, "x")),
    ("delete the first half", (0, 6, 0, 7, "")),
    ("delete the second half", (0, 7, 0, 8, "")),
])
def test_a_change_inside_a_surrogate_pair_desyncs_and_says_why(what, change):
    """Issue 16: a UTF-16 position between the halves of a pair was rounded, so the server's
    text silently differed from the client's; now the document is desynced (the server logs
    it and asks for the whole text), and the whole text brings it back."""
    from lsprotocol import types
    from pygls.workspace.position_codec import PositionCodec

    from vqlsp.lsp.documents import DocumentStore

    store = DocumentStore(PositionCodec(types.PositionEncodingKind.Utf16))
    doc = store.open("u", "plaintext", 1, "Hello 😀 world.")  # 😀: UTF-16 units 6 and 7
    report = store.change("u", 2, [_change(*change)])
    assert report.desynced_now and "inside" in doc.desynced, what
    assert doc.text.text == "Hello 😀 world."  # nothing applied from a guess
    report = store.change("u", 3, [types.TextDocumentContentChangeWholeDocument(text="Hello x world.")])
    assert report.resynced_now and doc.desynced is None and doc.text.text == "Hello x world."
