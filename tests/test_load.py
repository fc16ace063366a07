"""The load monitor flags overload when the loop is blocked or messages queue."""

from __future__ import annotations

import asyncio
import time

from sbc.load import LoadMonitor


def test_blocked_loop_sets_and_clears_overload() -> None:
    changes: list[bool] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        monitor = LoadMonitor(loop, max_delay=0.05, on_change=changes.append, interval=0.01)
        monitor.start()
        await asyncio.sleep(0.03)
        time.sleep(0.3)  # block the loop as a flood would
        await asyncio.sleep(0.02)
        assert monitor.overloaded
        for _ in range(300):  # bounded: recovery takes a few ticks
            if not monitor.overloaded:
                break
            await asyncio.sleep(0.01)
        monitor.stop()

    asyncio.run(scenario())
    assert changes == [True, False]


def test_queueing_delay_sets_overload_without_lag() -> None:
    changes: list[bool] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        monitor = LoadMonitor(loop, max_delay=0.1, on_change=changes.append, interval=0.01)
        monitor.start()
        for _ in range(100):  # messages reported as having waited 0.5 s
            monitor.observe_queued(0.5)
            await asyncio.sleep(0.005)
            if monitor.overloaded:
                break
        assert monitor.overloaded
        assert monitor.lag < 0.1
        for _ in range(300):  # the backlog is gone: the state clears
            monitor.observe_queued(0.001)
            if not monitor.overloaded:
                break
            await asyncio.sleep(0.01)
        monitor.stop()

    asyncio.run(scenario())
    assert changes == [True, False]
