"""The event-loop lag meter (``vqlsp serve --loop-lag``): which wake-ups count as late,
and the window a benchmark reads back. Time is the fake clock's."""

from __future__ import annotations

import asyncio

import pytest

from vqlsp.lsp.loop_lag import LoopLagMeter, busiest

from .fake_clock import FakeClock


def test_late_wake_ups_are_kept_with_when_they_happened():
    meter = LoopLagMeter(tick_s=0.01, clock=lambda: 10.0)
    meter.record(asked=1.00, woke=1.011)  # 1 ms late: a normal wake-up, not kept
    meter.record(asked=2.00, woke=2.31)  # the loop was busy ~300 ms
    meter.record(asked=3.00, woke=3.05)
    report = meter.report()
    assert report["ticks"] == 3 and report["now"] == 10.0
    assert report["late"] == [[2.31, pytest.approx(300.0)], [3.05, pytest.approx(40.0)]]
    assert busiest(report, since=0.0) == pytest.approx(300.0)
    assert busiest(report, since=2.5) == pytest.approx(40.0)  # only wake-ups after the window's start
    assert busiest(report, since=5.0) == 0.0


async def test_a_loop_on_time_records_ticks_and_nothing_late():
    clock = FakeClock()
    meter = LoopLagMeter(tick_s=0.01, clock=clock.time, sleep=clock.sleep)
    task = asyncio.get_running_loop().create_task(meter.run())
    try:
        await clock.advance(0.105)
    finally:
        task.cancel()
    assert meter.ticks == 10
    assert meter.report()["late"] == []
