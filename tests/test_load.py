"""The lag monitor flags overload when the loop is blocked, and clears it after."""

from __future__ import annotations

import asyncio
import time

from sbc.lag import LagMonitor


def test_blocked_loop_sets_and_clears_overload() -> None:
    changes: list[bool] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        monitor = LagMonitor(loop, threshold=0.05, on_change=changes.append, interval=0.01)
        monitor.start()
        await asyncio.sleep(0.03)
        time.sleep(0.2)  # block the loop as a flood would
        await asyncio.sleep(0.02)
        assert monitor.overloaded
        for _ in range(200):  # bounded: recovery takes a few ticks
            if not monitor.overloaded:
                break
            await asyncio.sleep(0.01)
        monitor.stop()

    asyncio.run(scenario())
    assert changes == [True, False]
