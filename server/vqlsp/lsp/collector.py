"""Python's cyclic garbage collector, kept from holding the event loop.

A full (generation 2) collection walks every object the collector tracks, and it
runs on whichever thread allocated last, with the GIL held: the event loop
stalls for all of it. After the model is loaded the server holds about 200,000
tracked objects that live as long as it does (imported modules, torch's modules,
the tokenizer, pygls's converters); one full collection over them took 348 ms on
this project's loaded 2-core machine, and the time a keystroke waited on a 100k-
token document peaked at the same order (issue 13). ``gc.freeze()`` moves them to
a permanent generation that collections skip: the same collection then took
0.004 ms.

``freeze_long_lived`` is called once a model is in place: it unfreezes first
and collects once, so that a replaced model's reference cycles are still freed,
then freezes what is alive. ``CollectionMeter`` records how long collections
take, per generation (``vqlsp.documentStats``' ``gc``), so a benchmark can tell
a collector pause from other work on the loop.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def freeze_long_lived() -> None:
    """Collect once, then move every object alive now out of later collections' way."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def freeze_survivors() -> None:
    """Collect the young generations, then freeze what is alive.

    Called when a document's analysis is built (and as it streams in): its results,
    tokens and text then stay out of every later collection instead of being walked by
    each full one (measured on a 2 MB document with its results: 148,000 tracked objects
    and 2.4 million list items, one full collection 825 ms under load; typing in it
    triggered one every 40-50 keystrokes). No full collection here, so this is cheap. A
    frozen object is still freed by reference counting when the text changes or the
    document closes; only a reference cycle among frozen objects waits for the next
    ``freeze_long_lived`` (a model load), and a document's state holds none
    (``tests/lsp/test_memory.py``). (``gc.get_freeze_count()`` walks the frozen objects:
    27 ms with a 100k-token document open; it is asked only for ``documentStats``.)"""
    gc.collect(1)
    gc.freeze()


@contextmanager
def no_collections() -> Iterator[None]:
    """No automatic collection inside the block (whatever thread allocates), then everything
    alive frozen. For tokenizing and cutting a long text on the text thread: its token lists
    hold millions of items that every collection walks with the GIL held (10 MB of prose:
    3 full collections in the block, the event loop held up to 383 ms, measured). The block
    makes lists, ints, strings and tuples, no reference cycles, so freezing without a
    collection first (which would walk those lists once more) leaves no garbage behind."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
    gc.freeze()


class CollectionMeter:
    """How many collections of each generation ran and the longest of each (a ``gc.callbacks``
    entry: ``start`` and ``stop`` come in pairs on the collecting thread)."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.counts = [0, 0, 0]
        self.longest_ms = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = self.clock()
            return
        generation = info.get("generation", 2)
        self.counts[generation] += 1
        self.longest_ms[generation] = max(self.longest_ms[generation], (self.clock() - self._started) * 1e3)

    def install(self) -> CollectionMeter:
        if self not in gc.callbacks:
            gc.callbacks.append(self)
        return self

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)

    def report(self) -> dict[str, Any]:
        # (not gc.get_freeze_count(): it walks every frozen object, 27 ms with a 100k-token document)
        return {"collections": list(self.counts), "longestMs": [round(ms, 3) for ms in self.longest_ms]}
