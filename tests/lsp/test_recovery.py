"""Recovery from configuration and memory handed back (issue 16), on a ``VqlspServer`` without
a transport: its messages to the client are captured, time is a ``FakeClock``, and the
inference thread is the real one (with the tiny model where a worker is needed)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from lsprotocol import types

from vqlsp.lsp.core import CONFIGURATION_WAIT_S, VqlspServer
from vqlsp.lsp.heap import HeapRelease
from vqlsp.lsp.options import merge_settings

from .fake_clock import FakeClock
from .harness import PROSE


@pytest.fixture
def server(monkeypatch):
    """A server whose log lines land in ``server.logged`` (no client to send them to)."""
    server = VqlspServer()
    server.logged = []
    monkeypatch.setattr(server, "log_message", lambda message, kind=None: server.logged.append(message))
    monkeypatch.setattr(server, "show_once", lambda message, kind=None: server.logged.append(message))
    monkeypatch.setattr(server, "capability", lambda path: path == "workspace.configuration")
    yield server
    server.jobs.close()
    server.text_thread.shutdown(wait=False)


def test_null_means_back_to_the_default():
    assert merge_settings({"model": "/bad", "device": "cpu"}, {"model": None}) == {"model": None, "device": "cpu"}
    assert merge_settings({"diagnostics": {"unit": "paragraph"}}, {"diagnostics": {"unit": None}}) == {
        "diagnostics": {"unit": None}}
    assert merge_settings({"model": "/m"}, None) == {"model": "/m"}  # no settings at all: the base stays


def test_a_bad_startup_model_is_fixed_with_null(server, monkeypatch):
    loads = []
    monkeypatch.setattr(server, "start_loading", lambda **_: loads.append(server.options.model))
    server.init_settings = {"model": "/no/such/model", "device": "cpu"}
    server.apply_settings(None, act=False)
    assert server.options.model == "/no/such/model"
    server.model_state = "failed: no such model"
    server.apply_settings({"model": None})  # didChangeConfiguration: back to the embedded default
    assert server.options.model is None and server.options.device == "cpu"
    assert loads == [None]  # the failed load is retried, on the default model
    # (each settings payload is the whole section, merged over initializationOptions)
    server.apply_settings({"model": None, "device": "auto"})  # and again when the device changes
    assert loads == [None, None]


async def test_an_unanswered_configuration_request_times_out(server):
    clock = FakeClock()
    server._clock = clock
    never = asyncio.get_running_loop().create_future()
    server.workspace_configuration_async = lambda params: never  # declared, never answered
    pulled = asyncio.create_task(server.pull_configuration())
    await clock.advance(CONFIGURATION_WAIT_S - 0.1)
    assert not pulled.done()
    await clock.advance(0.2)
    assert pulled.done() and pulled.exception() is None
    assert never.cancelled()
    assert sum("did not answer workspace/configuration" in m for m in server.logged) == 1


async def test_an_answered_configuration_request_is_applied(server):
    server._clock = FakeClock()

    async def answer(params):
        return [{"debounceMs": 7}]

    server.workspace_configuration_async = answer
    await server.pull_configuration()
    assert server.options.debounce_ms == 7 and not any("did not answer" in m for m in server.logged)


async def test_a_bad_model_during_an_update_keeps_its_result(server, tiny_model_dir, tmp_path, monkeypatch):
    """The update running when a bad ``model`` arrives still publishes: the old model serves
    until a new one is in place, and this one never will be."""
    from vqlsp.analysis.worker import AnalysisWorker
    from vqlsp.model.registry import load_model
    from vqlsp.text.tokenizer import load_tokenizer

    monkeypatch.setattr(server, "capability", lambda path: None)
    monkeypatch.setattr(server, "ensure_building", lambda doc: None)
    server.worker = AnalysisWorker(load_model(tiny_model_dir, "cpu"), 1 << 30)
    server.store.set_tokenizer(load_tokenizer(tiny_model_dir))
    server.model_state = "ready"
    gate, update = threading.Event(), server.worker.update

    def held_update(job, **kwargs):  # the update is running when the setting arrives
        gate.wait(30)
        return update(job, **kwargs)

    server.worker.update = held_update
    published = []

    async def publish(doc, results, priority):
        published.append([r.revision for r in results])

    server.publish = publish
    server.store.open("file:///u.txt", "plaintext", 1, PROSE)
    server.store.change("file:///u.txt", 2, [types.TextDocumentContentChangePartial(
        range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=0)),
        text="Typed. ")])
    running = asyncio.create_task(server.run_update("file:///u.txt"))
    await asyncio.sleep(0)
    server.apply_settings({"model": str(tmp_path / "missing")})
    for _ in range(5):
        await asyncio.sleep(0)  # the load starts (and waits behind the update on the inference thread)
    gate.set()
    await asyncio.wait_for(running, 30)
    await asyncio.wait_for(server._load_task, 30)
    assert published and server.dropped == 0
    assert server.model_state == "ready" and any("cannot load the model" in m for m in server.logged)


async def test_closes_release_memory_once_per_burst():
    clock, submitted = FakeClock(), []
    heap = HeapRelease(submitted.append, lambda: 1, delay=1.0, clock=clock)
    for _ in range(3):
        heap.soon()
        await clock.advance(0.5)
    assert submitted == []  # a burst of closes: still going on
    await clock.advance(1.0)
    assert len(submitted) == 1 and submitted[0]() == 1
    heap.soon()
    await clock.advance(1.0)
    assert len(submitted) == 2
    HeapRelease(submitted.append, None, clock=clock).soon()  # no glibc: nothing to call
    await clock.advance(5.0)
    assert len(submitted) == 2


def test_the_worker_keeps_nothing_of_a_closed_document(tiny_model_dir):
    from vqlsp.analysis.sections import SectionJob
    from vqlsp.analysis.worker import AnalysisWorker
    from vqlsp.model.registry import load_model

    worker = AnalysisWorker(load_model(tiny_model_dir, "cpu"), 1 << 30)
    ids = tuple(range(1, 40))
    text = "x" * len(ids)
    job = SectionJob("file:///a.txt", 1, 0, ids, None, text, tuple(range(len(ids))), tuple(range(1, len(ids) + 1)),
                     "sentence")
    worker.update(job, label_last=1)
    assert worker.budget.total_bytes > 0 and "file:///a.txt" in worker.documents
    worker.drop("file:///a.txt")
    assert worker.documents == {} and worker.budget.total_bytes == 0 and len(worker.budget) == 0
