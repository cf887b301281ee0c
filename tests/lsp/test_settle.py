"""A keystroke during a settle (issue 13): taken after one layer of the settle, not after it.

A ``VqlspServer`` without a transport, time on a fake clock, the real inference
thread with the tiny model (``offline.offline_server``). The settle's build is
held inside its first layer by the ``give_way`` hook it polls; the keystroke's
update is queued meanwhile; the test counts the layers the settle ran after it.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from lsprotocol import types

from vqlsp.lsp.core import BUILD_CHUNK_TOKENS, IDLE_AFTER_S, IDLE_BUILD_CHUNK_TOKENS, TYPING_QUIET_S
from vqlsp.lsp.jobs import FOREGROUND

from .fake_clock import FakeClock
from .harness import PROSE
from .offline import classifications, offline_server, published

URI = "file:///settle.txt"
SETTLE_S = 2.0


@pytest.fixture
def server(tiny_model_dir):
    with offline_server(tiny_model_dir) as server:
        server.scheduler.quiet, server.scheduler.debounce = SETTLE_S, 0.0
        yield server


def type_at_start(server, version: int, text: str) -> None:
    at = types.Position(line=0, character=0)
    server.store.change(URI, version, [types.TextDocumentContentChangePartial(
        range=types.Range(start=at, end=at), text=text)])
    server.request_update(server.store.get(URI), typed=True)


async def test_a_keystroke_during_a_settle_waits_for_one_layer_of_it(server):
    clock: FakeClock = server._clock
    doc = server.store.open(URI, "plaintext", 1, PROSE)
    server.opened(doc)
    await asyncio.wait_for(server.builders[URI], 30)  # the first pass
    type_at_start(server, 2, "Typed words. ")  # stable ids: the inserted tokens' ids drift
    await clock.advance(0)
    await published(server, lambda p: p["version"] == 2)
    assert classifications(server)[-1]["positionDrift"] > 0

    # The settle starts once the document rests for settleMs; hold it inside its first layer.
    held, go = threading.Event(), threading.Event()
    asked_after_key: list[bool] = []
    real_waiting = server.jobs.waiting

    def give_way() -> bool:
        if not held.is_set():
            held.set()
            go.wait(30)
        waiting = real_waiting()
        if go.is_set():
            asked_after_key.append(waiting)
        return waiting

    server.jobs.waiting = give_way
    await clock.advance(SETTLE_S + TYPING_QUIET_S)
    assert server.settles == 1
    await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, held.wait, 30), 35)

    # A keystroke now: its update is queued on the inference thread behind the settle's layer.
    key_taken: list[int] = []
    update = server.worker.update

    def recorded_update(job, **kwargs):
        key_taken.append(len(asked_after_key))  # layers the settle ran since the key was queued
        return update(job, **kwargs)

    server.worker.update = recorded_update
    queued = asyncio.Event()
    submit = server.jobs.submit
    server.jobs.submit = lambda priority, *a, **k: (priority != FOREGROUND or queued.set(), submit(priority, *a, **k))[1]
    type_at_start(server, 3, "More. ")
    await clock.advance(0)
    await asyncio.wait_for(queued.wait(), 30)
    go.set()
    await published(server, lambda p: p["version"] == 3)
    assert key_taken == [1]  # the settle gave way at the end of its step (a layer) after the key came
    assert asked_after_key == [True]
    assert not any(p["settled"] for p in classifications(server))  # the key did not wait for it

    # Once the writer rests again, the settle runs to the end: exact position ids.
    await clock.advance(SETTLE_S + TYPING_QUIET_S)
    await published(server, lambda p: p["settled"])
    last = classifications(server)[-1]
    assert last["version"] == 3 and last["positionDrift"] == 0 and server.settles == 2


async def test_builds_take_short_chunks_while_someone_may_type_and_whole_sections_after(server):
    """A keystroke waits for one layer of a build's chunk: chunks stay short from a keystroke
    until ``IDLE_AFTER_S`` later (a settle among them), and a build after that takes whole sections."""
    clock: FakeClock = server._clock
    chunks: list[int] = []
    build_step = server.worker.build_step

    def recorded(job, chunk, **kwargs):
        chunks.append(chunk)
        return build_step(job, chunk, **kwargs)

    server.worker.build_step = recorded
    doc = server.store.open(URI, "plaintext", 1, PROSE)
    server.opened(doc)
    await asyncio.wait_for(server.builders[URI], 30)
    assert chunks and set(chunks) == {IDLE_BUILD_CHUNK_TOKENS}  # nobody has typed yet

    chunks.clear()
    type_at_start(server, 2, "Typed words. ")
    await clock.advance(0)
    await published(server, lambda p: p["version"] == 2)
    assert SETTLE_S + TYPING_QUIET_S < IDLE_AFTER_S
    await clock.advance(SETTLE_S + TYPING_QUIET_S)
    await published(server, lambda p: p["settled"])
    assert chunks and set(chunks) == {BUILD_CHUNK_TOKENS}  # the settle, soon after the key

    chunks.clear()
    await clock.advance(IDLE_AFTER_S)
    server.reanalyse([doc])
    await asyncio.wait_for(server.builders[URI], 30)
    assert chunks and set(chunks) == {IDLE_BUILD_CHUNK_TOKENS}
