"""Unit tests of the server's domain pieces, without a server: options, segments, scheduler,
memory budget, the job queue, the worker's bookkeeping, and the analyzers against each other."""

from __future__ import annotations

import asyncio

import pytest
import torch

from vqlsp.analysis.analyzers import DenseAnalyzer, document_output, open_analyzer
from vqlsp.analysis.memory import MemoryBudget
from vqlsp.analysis.worker import token_spans
from vqlsp.engine.edits import TokenEdit, apply_edits
from vqlsp.lsp.options import DiagnosticOptions, Options, changed_fields, parse_options
from vqlsp.lsp.scheduler import Scheduler
from vqlsp.text.segments import paragraphs, segment, sentences

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


# -- scheduler -------------------------------------------------------------------------------


async def test_scheduler_coalesces_and_never_overlaps():
    started, running, overlaps = [], 0, 0
    gate = asyncio.Event()

    async def run(key):
        nonlocal running, overlaps
        running += 1
        overlaps += running > 1
        started.append(key)
        await gate.wait()
        running -= 1

    scheduler = Scheduler(run, debounce=0.01)
    for _ in range(10):
        scheduler.request("a")
    idle = asyncio.create_task(scheduler.idle("a"))
    await asyncio.wait_for(_until(lambda: started == ["a"]), 5)
    for _ in range(10):  # while in flight: only marks it dirty
        scheduler.request("a")
    gate.set()
    await asyncio.wait_for(idle, 5)
    assert started == ["a", "a"] and overlaps == 0 and scheduler.started == 2
    assert not scheduler.busy("a")


async def test_scheduler_max_wait_and_forget():
    runs = []

    async def run(key):
        runs.append(asyncio.get_running_loop().time())

    scheduler = Scheduler(run, debounce=0.05, max_wait=0.1)
    t0 = asyncio.get_running_loop().time()
    # A writer who never pauses for the debounce still gets an update within max_wait.
    for _ in range(12):
        scheduler.request("a")
        await asyncio.wait_for(_ticks(0.02), 1)
    await asyncio.wait_for(scheduler.idle("a"), 5)
    assert runs and runs[0] - t0 < 0.2
    scheduler.request("b")
    scheduler.forget("b")
    await asyncio.wait_for(scheduler.idle("b"), 1)
    assert not scheduler.busy("b")


async def _until(predicate):
    while not predicate():
        await asyncio.sleep(0)


async def _ticks(seconds: float):
    """Let loop time pass (drives the scheduler's timers; not test synchronisation)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_later(seconds, done.set_result, None)
    await done


async def test_scheduler_calls_on_quiet_once_a_document_rests():
    quiet = []

    async def run(key):
        pass

    scheduler = Scheduler(run, debounce=0, on_quiet=quiet.append, quiet=0.05)
    scheduler.request("a", immediate=True)
    await asyncio.wait_for(scheduler.idle("a"), 5)
    await asyncio.wait_for(_ticks(0.02), 1)
    scheduler.request("a", immediate=True)  # a change before the quiet time: the timer restarts
    await asyncio.wait_for(scheduler.idle("a"), 5)
    assert quiet == []
    await asyncio.wait_for(_until(lambda: quiet), 5)
    assert quiet == ["a"]
    await asyncio.wait_for(_ticks(0.1), 1)
    assert quiet == ["a"]  # once per rest, not periodically
    scheduler.request("b", immediate=True)
    await asyncio.wait_for(scheduler.idle("b"), 5)
    scheduler.forget("b")  # closed: no callback
    scheduler.quiet = 0  # 0: never
    scheduler.request("c", immediate=True)
    await asyncio.wait_for(scheduler.idle("c"), 5)
    await asyncio.wait_for(_ticks(0.1), 1)
    assert quiet == ["a"]


async def test_scheduler_survives_failing_updates():
    calls = []

    async def run(key):
        calls.append(key)
        raise RuntimeError("boom")

    scheduler = Scheduler(run, debounce=0)
    scheduler.request("a", immediate=True)
    await asyncio.wait_for(scheduler.idle("a"), 5)
    scheduler.request("a", immediate=True)
    await asyncio.wait_for(scheduler.idle("a"), 5)
    assert calls == ["a", "a"]


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
