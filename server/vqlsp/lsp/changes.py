"""``didChange`` notifications applied in order, a slice at a time.

One ``didChange`` can carry thousands of content changes (replace-all, a
formatter, a multi-cursor edit over a long file). Each costs the text layer's
splice and the tokenizer's local re-encode, about 0.3-1 ms on a 100k-token
document, so applying one such message whole held the event loop for seconds
(3.4 s for a replace-all of 3,972 changes at 100k tokens): every other
document's results, and the writer's next keystroke, waited behind it.

Here a short ``didChange`` (what a keystroke sends) is applied at once, as
before. A long one is applied ``SLICE_CHANGES`` content changes (and at most
``SLICE_S`` of time) at a time, with the event loop free between slices. While a
document has changes pending:

* later ``didChange``s of it queue behind them, so changes are applied in the
  order the client sent them;
* its text is between two of the client's versions (``Document.applying``), so
  nothing is published for it (``core``) until the last slice is applied;
* requests about it (hover, code actions, pulled diagnostics, stats) wait for
  ``applied`` first, so their positions are read on the text the client meant.

A close or reopen drops whatever is pending for the document (``discard``).

A long document's open can be pending too (``after``: its line index is built off
the event loop): its ``didChange``s queue behind the open, and requests about it
wait for it, as behind a long change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from lsprotocol import types

from .documents import ChangeApplication, ChangeReport, DocumentStore, UnknownDocument

log = logging.getLogger(__name__)

SLICE_CHANGES = 64  # content changes per slice: a keystroke's didChange (1-3) is one slice, applied at once
SLICE_S = 0.02  # and at most this long (checked between changes), so the loop waits <= ~20 ms

Changes = Sequence[types.TextDocumentContentChangeEvent]


class ChangeApplier:
    """Applies each document's ``didChange``s in arrival order (see the module docstring).

    ``on_applied`` gets each message's ``ChangeReport`` once it is applied whole;
    ``on_unknown`` a message for a document that is not open."""

    def __init__(
        self,
        store: DocumentStore,
        on_applied: Callable[[ChangeReport], None],
        on_unknown: Callable[[UnknownDocument], None],
        *,
        slice_changes: int = SLICE_CHANGES,
        slice_s: float = SLICE_S,
    ):
        self.store, self.on_applied, self.on_unknown = store, on_applied, on_unknown
        self.slice_changes, self.slice_s = slice_changes, slice_s
        self._queues: dict[str, deque[tuple[int, Changes]]] = {}  # uri -> messages not yet begun
        self._tasks: dict[str, asyncio.Task] = {}  # uri -> the task applying its queue
        self.sliced = 0  # messages applied in more than one slice (stats)

    def pending(self, uri: str) -> bool:
        return uri in self._tasks

    def submit(self, uri: str, version: int, changes: Changes) -> None:
        """One ``didChange``: applied now if it is short and nothing of ``uri`` is pending."""
        if uri not in self._tasks and len(changes) <= self.slice_changes:
            try:
                report = self.store.change(uri, version, changes)
            except UnknownDocument as exc:
                self.on_unknown(exc)
                return
            self.on_applied(report)
            return
        self._queues.setdefault(uri, deque()).append((version, changes))
        if uri not in self._tasks:
            self._tasks[uri] = asyncio.get_running_loop().create_task(self._drain(uri))

    def after(self, uri: str, first: Callable[[], Awaitable[object]]) -> None:
        """Apply ``uri``'s ``didChange``s only once ``first()`` is done (its open, completed off
        the loop); until then they queue, and ``applied`` waits for it too. Whatever was
        pending for ``uri`` is dropped (``first`` opens it afresh)."""
        self.discard(uri)
        self._queues[uri] = deque()
        self._tasks[uri] = asyncio.get_running_loop().create_task(self._drain(uri, first))

    async def applied(self, uri: str) -> None:
        """Wait until every ``didChange`` of ``uri`` received so far is applied."""
        while (task := self._tasks.get(uri)) is not None:
            await asyncio.wait([task])  # (neither raises if it was cancelled, nor cancels it)

    def discard(self, uri: str) -> None:
        """``uri`` was closed or opened again: what is pending for it no longer applies."""
        self._queues.pop(uri, None)
        task = self._tasks.pop(uri, None)
        if task is not None:
            task.cancel()

    async def _drain(self, uri: str, first: Callable[[], Awaitable[object]] | None = None) -> None:
        queue = self._queues[uri]
        application: ChangeApplication | None = None
        try:
            if first is not None:
                await first()
            while queue:
                version, changes = queue.popleft()
                try:
                    application = self.store.begin_change(uri, version, changes)
                except UnknownDocument as exc:
                    self.on_unknown(exc)
                    continue
                slices = 0
                while not application.done:
                    if slices:
                        await asyncio.sleep(0)  # the loop serves everything else between slices
                    deadline = time.perf_counter() + self.slice_s
                    for _ in range(self.slice_changes):
                        application.step(1)
                        if application.done or time.perf_counter() >= deadline:
                            break
                    slices += 1
                self.sliced += slices > 1
                report, application = application.finish(), None
                self.on_applied(report)
        except asyncio.CancelledError:
            raise
        except Exception:  # the boundary of a background task: log; the document is resynced
            log.exception("applying changes to %s failed", uri)
            if application is not None:
                self.on_applied(application.abandon("a change could not be applied"))
        finally:
            if self._tasks.get(uri) is asyncio.current_task():
                del self._tasks[uri]
                self._queues.pop(uri, None)
