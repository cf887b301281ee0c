"""The collector meter counts and times collections; freezing takes long-lived objects out
of later collections (what a full collection walks while the event loop waits)."""

from __future__ import annotations

import gc
import weakref

from vqlsp.lsp.collector import CollectionMeter, freeze_long_lived, freeze_survivors, no_collections


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_meter_keeps_counts_and_the_longest_per_generation():
    clock = FakeClock()
    meter = CollectionMeter(clock)
    for generation, ms in [(0, 1.0), (2, 40.0), (0, 3.0), (2, 10.0)]:
        meter("start", {"generation": generation})
        clock.now += ms / 1e3
        meter("stop", {"generation": generation, "collected": 0})
    report = meter.report()
    assert report["collections"] == [2, 0, 2] and report["longestMs"] == [3.0, 0.0, 40.0]


def test_the_meter_sees_real_collections():
    meter = CollectionMeter().install()
    try:
        gc.collect()
        assert meter.counts[2] >= 1
    finally:
        meter.remove()
    assert meter not in gc.callbacks


def test_freezing_leaves_later_objects_to_the_collector():
    try:
        freeze_long_lived()
        assert gc.get_freeze_count() > 0
        cycle: list = []
        cycle.append(cycle)  # a cycle made after the freeze is still collected
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()


def test_frozen_survivors_are_still_freed_by_reference_counting():
    class State:  # a document's state: no reference cycle
        pass

    try:
        state = State()
        state.results = [{"label": "formal"} for _ in range(100)]
        alive = weakref.ref(state)
        before = gc.get_freeze_count()
        freeze_survivors()
        assert gc.get_freeze_count() > before  # state and its results among them
        assert not any(o is state for o in gc.get_objects())  # left out of every collection
        del state  # the document closes
        assert alive() is None
    finally:
        gc.unfreeze()


def test_no_collections_pauses_the_collector_then_freezes_what_the_block_made():
    gc.unfreeze()
    try:
        with no_collections():
            assert not gc.isenabled()
            made = [[i] for i in range(10_000)]  # tracked objects
            before = gc.get_freeze_count()
        assert gc.isenabled()
        assert gc.get_freeze_count() >= before + len(made)
        gc.disable()  # a collector already off stays off
        with no_collections():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
        freeze_long_lived()
