"""How late the server's event loop wakes up: the time a keystroke can wait unread.

Every message, keystroke or request, is read on the event loop, so the longest
stretch the loop spends in one callback (a JSON parse, a publish of thousands of
diagnostics, a GIL held by another thread) is the longest any keystroke waits
before the server even sees it. A client cannot measure that alone: a probe's
round trip also counts the client's own parsing of what the server sent. This
meter runs on the loop itself: a task that sleeps ``tick_s`` and records by how
much it woke up late.

It is off by default (an editor's server should not wake up a hundred times a
second for nothing); ``vqlsp serve --loop-lag`` turns it on and the
``vqlsp.documentStats`` command reports it (``loopLag``), for the benchmarks.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from typing import Any

TICK_S = 0.01
KEEP_LATE_S = 0.005  # wake-ups later than this are kept, with when they happened
KEEP = 8192


class LoopLagMeter:
    def __init__(self, tick_s: float = TICK_S, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep):
        self.tick_s = tick_s
        self.clock = clock
        self._sleep = sleep
        self.late: collections.deque[tuple[float, float]] = collections.deque(maxlen=KEEP)  # (woke at, late by) in s
        self.ticks = 0

    async def run(self) -> None:
        while True:
            asked = self.clock()
            await self._sleep(self.tick_s)
            self.record(asked, self.clock())

    def record(self, asked: float, woke: float) -> None:
        """A tick that slept from ``asked`` and woke at ``woke``."""
        self.ticks += 1
        late = woke - asked - self.tick_s
        if late > KEEP_LATE_S:
            self.late.append((woke, late))

    def report(self) -> dict[str, Any]:
        """JSON for ``documentStats``: the meter's clock now, and each late wake-up as
        ``[woke at, ms late]``; a client takes the window it cares about (e.g. since its
        previous report's ``now``). A wake-up at ``woke`` ``ms`` late means the loop was
        busy from about ``woke - ms`` to ``woke``."""
        return {"tickMs": self.tick_s * 1e3, "now": self.clock(), "ticks": self.ticks,
                "late": [[round(t, 6), round(s * 1e3, 3)] for t, s in self.late]}


def busiest(report: dict[str, Any], since: float) -> float:
    """The longest the loop was busy (ms), over the wake-ups after ``since`` (the meter's
    clock, e.g. an earlier report's ``now``); 0 when it never woke up late."""
    return max((ms for woke, ms in report["late"] if woke >= since), default=0.0)
