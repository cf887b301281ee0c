"""A ``VqlspServer`` without a transport, for tests of its scheduling on a fake clock.

Its notifications are captured (``server.sent``, ``server.heard``), time runs on a
``FakeClock`` (the scheduler's debounce and quiet timers, the builds' typing
pause), and the inference thread is the real one, with the tiny model: jobs
answer in real time, so tests wait for what they publish (``published``), never
for time to pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from vqlsp.lsp.core import VqlspServer
from vqlsp.lsp.diagnostics import CLASSIFICATION

from .fake_clock import FakeClock


@contextmanager
def offline_server(model_dir: Path, *, budget_bytes: int = 1 << 30, section_tokens: int | None = None
                   ) -> Iterator[VqlspServer]:
    from vqlsp.analysis.worker import AnalysisWorker
    from vqlsp.model.registry import load_model
    from vqlsp.text.tokenizer import load_tokenizer

    server = VqlspServer()
    server.sent, server.heard = [], asyncio.Event()

    def notify(method, params=None):
        server.sent.append((method, params))
        server.heard.set()

    server.protocol.notify = notify
    server.protocol.notify_json_text = lambda method, params: None  # (diagnostics pushes)
    server.log_message = lambda message, kind=None: None
    server.capability = lambda path: None
    server._clock = server.scheduler._clock = FakeClock()
    server.worker = AnalysisWorker(load_model(model_dir, "cpu"), budget_bytes)
    if section_tokens is not None:
        server.store.section_tokens = section_tokens
    server.store.set_tokenizer(load_tokenizer(model_dir))
    server.model_state = "ready"
    try:
        yield server
    finally:
        server.jobs.close()
        server.text_thread.shutdown(wait=False)


def classifications(server: VqlspServer) -> list[dict]:
    return [params for method, params in server.sent if method == CLASSIFICATION]


async def published(server: VqlspServer, test: Callable[[dict], bool], timeout: float = 30.0) -> None:
    """Wait (no fake time passes) until a classification passes ``test``."""
    async def wait():
        while not any(test(p) for p in classifications(server)):
            server.heard.clear()
            await server.heard.wait()
    await asyncio.wait_for(wait(), timeout)
