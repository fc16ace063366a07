"""Hot reload: valid edits are applied whole, bad ones refused with file:line."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from policy_samples import ROUTES, WritePolicy

from sbc.policy import Policy, load_policy
from sbc.watch import PolicyWatcher

INTERVAL = 0.02


class Applied:
    def __init__(self, policy: Policy) -> None:
        self.policies = [policy]

    def current(self) -> Policy:
        return self.policies[-1]

    def __call__(self, policy: Policy) -> None:
        self.policies.append(policy)


def touch_write(path: Path, text: str) -> None:
    """Write and move the mtime on, whatever the filesystem's timestamp granularity."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(500):  # bounded: 10 s at most
        if condition():
            return
        await asyncio.sleep(INTERVAL)
    raise AssertionError("condition never held")


async def watching(directory: Path, body: Callable[[PolicyWatcher, Applied], object]) -> None:
    applied = Applied(load_policy(directory))
    watcher = PolicyWatcher(directory, applied.current, applied, interval=INTERVAL)
    watcher.start()
    try:
        result = body(watcher, applied)
        if asyncio.iscoroutine(result):
            await result
    finally:
        await watcher.stop()


def test_valid_edit_is_applied_and_bad_edit_refused(write_policy: WritePolicy) -> None:
    directory = write_policy()

    async def body(watcher: PolicyWatcher, applied: Applied) -> None:
        touch_write(directory / "routes.yaml", ROUTES.replace("to: [pbx]", "to: [carrier]"))
        await until(lambda: len(applied.policies) == 2)
        assert applied.current().routes[0].to == ("carrier",)
        assert watcher.last is not None
        assert watcher.last.applied

        touch_write(directory / "routes.yaml", ROUTES.replace("to: [pbx]", "to: [nowhere]"))
        await until(lambda: watcher.counters.refused == 1)
        assert len(applied.policies) == 2  # the running policy stays
        assert watcher.last is not None
        assert not watcher.last.applied
        assert watcher.last.issues[0].startswith("routes.yaml:4: routes[0].to[0]: unknown trunk")

        touch_write(directory / "routes.yaml", ROUTES)  # fixed: applied again
        await until(lambda: len(applied.policies) == 3)
        assert applied.current().routes[0].to == ("pbx",)

    asyncio.run(watching(directory, body))


def test_listener_change_needs_a_restart(write_policy: WritePolicy) -> None:
    directory = write_policy()

    async def body(watcher: PolicyWatcher, applied: Applied) -> None:
        interfaces = (directory / "interfaces.yaml").read_text().replace("5060", "5070", 1)
        touch_write(directory / "interfaces.yaml", interfaces)
        await until(lambda: watcher.counters.refused == 1)
        assert watcher.last is not None
        assert watcher.last.issues == (
            "interfaces.yaml:0: listening addresses changed: restart the SBC to apply them",
        )
        assert len(applied.policies) == 1

    asyncio.run(watching(directory, body))


def test_new_optional_file_counts_as_a_change(write_policy: WritePolicy) -> None:
    directory = write_policy()

    async def body(watcher: PolicyWatcher, applied: Applied) -> None:
        touch_write(directory / "sbc.yaml", "calls:\n  no_answer_timeout_s: 30\n")
        await until(lambda: len(applied.policies) == 2)
        assert applied.current().settings.calls.no_answer_timeout_s == 30

    asyncio.run(watching(directory, body))
