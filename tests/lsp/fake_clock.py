"""A clock for timing logic in tests: time moves only when the test says so.

``FakeClock`` has the two methods the scheduler uses of the event loop (``time``,
``call_later``); ``advance(seconds)`` fires the timers that fall due, in order, and
lets the tasks they start run, without any real time passing.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Any


class _Timer:
    def __init__(self, callback: Callable[..., Any], args: tuple[Any, ...]):
        self.callback, self.args, self.cancelled = callback, args, False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, _Timer]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> _Timer:
        timer = _Timer(callback, args)
        heapq.heappush(self._timers, (self.now + max(delay, 0.0), next(self._order), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        """A coroutine's wait on this clock (an update that takes ``seconds``)."""
        done = asyncio.get_running_loop().create_future()
        self.call_later(seconds, lambda: done.done() or done.set_result(None))
        await done

    async def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while True:
            await _run_ready()
            if not self._timers or self._timers[0][0] > target:
                break
            when, _, timer = heapq.heappop(self._timers)
            self.now = when
            if not timer.cancelled:
                timer.callback(*timer.args)
        self.now = target
        await _run_ready()


async def _run_ready() -> None:
    """Let every task that can run without time passing run (no loop time passes)."""
    for _ in range(20):
        await asyncio.sleep(0)
