"""Per-document update scheduling on the event loop: debounce, coalesce, one in flight.

``request(key)`` says "this document changed". The update (an ``async``
callback, which cuts a snapshot, runs inference off the loop and publishes)
starts once the document has been quiet for ``debounce`` seconds, or at the
latest ``max_wait`` after the first change it covers, so a writer who never
pauses still sees results. A burst of changes becomes one update. While an
update of a document is in flight, further requests only mark it dirty; when
it finishes, one more update is scheduled for everything that came in
meanwhile. So at most one update per document runs at a time, and documents
do not wait for each other here (the worker serialises the compute).

Once a document's updates are done and ``quiet`` seconds pass without a new
request, ``on_quiet(key)`` is called (once): the server uses it to settle a
document whose writer paused (re-index its positions, ``core.VqlspServer.settle``).

No LSP here: the server passes the callback; tests drive it directly, on a fake
clock (``clock``: anything with the event loop's ``time()`` and ``call_later``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Clock(Protocol):
    """What the scheduler needs of time: the event loop's own two methods."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Any: ...


@dataclass
class _State:
    timer: asyncio.TimerHandle | None = None
    task: asyncio.Task | None = None
    dirty: bool = False
    first_request: float | None = None  # loop time of the oldest change not yet covered
    quiet_timer: asyncio.TimerHandle | None = None  # armed when the last update finished
    idle_waiters: list[asyncio.Future] = field(default_factory=list)


class Scheduler:
    def __init__(
        self,
        run: Callable[[str], Awaitable[None]],
        debounce: float = 0.03,
        max_wait: float | None = None,
        *,
        on_quiet: Callable[[str], None] | None = None,
        quiet: float = 0.0,
        clock: Clock | None = None,
    ):
        self._run = run
        self.debounce = debounce
        self.max_wait = max_wait
        self.on_quiet = on_quiet
        self.quiet = quiet  # seconds without requests after an update before on_quiet; 0: never
        self._states: dict[str, _State] = {}
        self.started = 0  # updates started, all documents (for stats and tests)
        self._clock = clock  # None: the running event loop

    @property
    def clock(self) -> Clock:
        return self._clock if self._clock is not None else asyncio.get_running_loop()

    @property
    def _max_wait(self) -> float:
        return self.max_wait if self.max_wait is not None else max(0.25, 8 * self.debounce)

    def request(self, key: str, *, immediate: bool = False) -> None:
        """Schedule an update of ``key`` (coalesced with any pending one)."""
        clock = self.clock
        state = self._states.setdefault(key, _State())
        _cancel(state.quiet_timer)
        state.quiet_timer = None
        state.dirty = True
        now = clock.time()
        if state.first_request is None:
            state.first_request = now
        if state.task is not None:
            return  # runs again when the in-flight update finishes
        delay = 0.0 if immediate else min(self.debounce, max(0.0, state.first_request + self._max_wait - now))
        _cancel(state.timer)
        state.timer = clock.call_later(delay, self._fire, key)

    def forget(self, key: str) -> None:
        """Drop pending work of ``key`` (closed); an in-flight update finishes but is not rerun."""
        state = self._states.pop(key, None)
        if state is None:
            return
        _cancel(state.timer)
        _cancel(state.quiet_timer)
        state.dirty = False
        if state.task is None:
            self._wake(state)

    def busy(self, key: str) -> bool:
        state = self._states.get(key)
        return state is not None and (state.dirty or state.task is not None)

    async def idle(self, key: str) -> None:
        """Wait until ``key`` has no pending or running update."""
        state = self._states.get(key)
        if state is None or not (state.dirty or state.task is not None):
            return
        future = asyncio.get_running_loop().create_future()
        state.idle_waiters.append(future)
        await future

    def _fire(self, key: str) -> None:
        state = self._states.get(key)
        if state is None:
            return
        state.timer = None
        if state.task is not None:
            return
        state.dirty = False
        state.first_request = None
        self.started += 1
        state.task = asyncio.get_running_loop().create_task(self._guarded(key))
        state.task.add_done_callback(lambda _t, key=key, state=state: self._done(key, state))

    async def _guarded(self, key: str) -> None:
        try:
            await self._run(key)
        except asyncio.CancelledError:
            raise
        except Exception:  # the callback is the boundary; a failure must not stop scheduling
            log.exception("update of %s failed", key)

    def _done(self, key: str, state: _State) -> None:
        state.task = None
        if self._states.get(key) is not state:  # forgotten meanwhile
            self._wake(state)
            return
        if state.dirty:
            clock = self.clock
            now = clock.time()
            first = state.first_request if state.first_request is not None else now
            delay = min(self.debounce, max(0.0, first + self._max_wait - now))
            state.timer = clock.call_later(delay, self._fire, key)
        else:
            if self.on_quiet is not None and self.quiet > 0:
                state.quiet_timer = self.clock.call_later(self.quiet, self._quiet, key)
            self._wake(state)

    def _quiet(self, key: str) -> None:
        state = self._states.get(key)
        if state is None or state.dirty or state.task is not None:
            return
        state.quiet_timer = None
        try:
            self.on_quiet(key)  # type: ignore[misc]
        except Exception:  # like an update: a failure must not stop scheduling
            log.exception("quiet callback of %s failed", key)

    @staticmethod
    def _wake(state: _State) -> None:
        for future in state.idle_waiters:
            if not future.done():
                future.set_result(None)
        state.idle_waiters.clear()


def _cancel(timer: asyncio.TimerHandle | None) -> None:
    if timer is not None:
        timer.cancel()
