"""The inference thread's queue: one thread, jobs by priority, each awaited from the event loop.

All inference runs on one thread (the model and the cached states need no
locks, and updates never compete for the CPU cores), so the order of jobs is
the server's latency policy: a job of the document being typed in
(``FOREGROUND``) runs before anything queued in the ``BACKGROUND`` (first
passes of opened documents, settles, other documents' re-analysis), and
background work is cut into short jobs, or gives way: a section's build asks
``waiting()`` after every layer and stops there when another job is queued, so
a keystroke waits at most for one short step of the job already running.
Within a priority, jobs run in the order they came.

Not pygls's thread pool: that one reads stdin.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

FOREGROUND = 0
BACKGROUND = 1

T = TypeVar("T")


class JobQueue:
    def __init__(self, name: str = "vqlsp-inference"):
        self._heap: list[tuple[int, int, Callable[[], Any], Future]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._closed = False
        self.queued = {FOREGROUND: 0, BACKGROUND: 0}  # jobs waiting, by priority (stats)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, priority: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future:
        """Queue ``fn(*args, **kwargs)``; a ``concurrent.futures.Future`` of its result."""
        future: Future = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the inference queue is closed")
            heapq.heappush(self._heap, (priority, next(self._order), lambda: fn(*args, **kwargs), future))
            self.queued[priority] += 1
            self._ready.notify()
        return future

    def waiting(self) -> bool:
        """Whether a job is queued behind the one running (a long job polls this between its
        steps, so it reads without the lock: a job queued a moment later is seen at the next)."""
        return bool(self._heap)

    async def run(self, priority: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``submit`` and await the result on the event loop (cancelling the wait cancels the
        job if it has not started)."""
        return await asyncio.wrap_future(self.submit(priority, fn, *args, **kwargs))

    def close(self, wait: float = 0.0) -> None:
        """Run nothing more; jobs still queued are cancelled. ``wait``: seconds to let the job
        that is running finish (at exit: a process that ends while this thread is inside torch
        aborts, "terminate called without an active exception")."""
        with self._ready:
            self._closed = True
            for _, _, _, future in self._heap:
                future.cancel()
            self._heap.clear()
            self._ready.notify()
        if wait > 0 and self._thread is not threading.current_thread():
            self._thread.join(wait)

    def _loop(self) -> None:
        while True:
            with self._ready:
                while not self._heap and not self._closed:
                    self._ready.wait()
                if self._closed:
                    return
                priority, _, call, future = heapq.heappop(self._heap)
                self.queued[priority] -= 1
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = call()
            except BaseException as exc:  # delivered to the awaiting coroutine, which decides
                future.set_exception(exc)
            else:
                future.set_result(result)
