"""Hot reload: watch the policy directory and swap in valid edits.

Polling (a handful of ``stat`` calls a second) rather than inotify: it works
on every filesystem, bind mount and editor, and an operator never waits
more than two intervals. A change is loaded only once the files have stopped
changing for one interval, so a half-written file is not mistaken for a bad
edit. Loading happens off the event loop; the result is applied on it.

All-or-nothing: a policy that fails validation, or that changes what can
only change at start (the listening sockets), is refused with every reason,
logged, and kept in :attr:`PolicyWatcher.last` for the admin plane, while
the running policy stays in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from sbc.policy import POLICY_FILES, Policy, PolicyError, PolicyIssue, load_policy

log = structlog.get_logger("sbc.policy")

Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class ReloadResult:
    """The outcome of the last reload attempt (what the admin plane reports)."""

    at: float  # wall-clock seconds
    applied: bool
    issues: tuple[str, ...] = ()


@dataclass
class ReloadCounters:
    applied: int = 0
    refused: int = 0


@dataclass
class PolicyWatcher:
    """Polls ``directory``; calls ``apply`` with each valid new policy."""

    directory: Path
    current: Callable[[], Policy]
    apply: Callable[[Policy], None]
    interval: float = 1.0
    last: ReloadResult | None = None
    counters: ReloadCounters = field(default_factory=ReloadCounters)
    _task: asyncio.Task[None] | None = None
    _seen: Fingerprint = ()

    def start(self) -> None:
        self._seen = fingerprint(self.directory)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            now = fingerprint(self.directory)
            if now == self._seen:
                continue
            await asyncio.sleep(self.interval)  # let the editor finish writing
            settled = fingerprint(self.directory)
            if settled != now:
                continue  # still changing: look again next round
            self._seen = settled
            await self.reload()

    async def reload(self) -> ReloadResult:
        """Load the directory now and apply it if valid (also used by the admin plane)."""
        try:
            policy = await asyncio.to_thread(load_policy, self.directory)
            refusal = restart_needed(self.current(), policy)
            if refusal is not None:
                raise PolicyError([refusal])
        except PolicyError as exc:
            issues = tuple(str(issue) for issue in exc.issues)
            self.counters.refused += 1
            self.last = ReloadResult(time.time(), False, issues)
            log.error("policy.refused", directory=str(self.directory), issues=list(issues))
            return self.last
        self.apply(policy)
        self.counters.applied += 1
        self.last = ReloadResult(time.time(), True)
        log.info("policy.reloaded", directory=str(self.directory), summary=policy.describe())
        return self.last


def fingerprint(directory: Path) -> Fingerprint:
    """(name, mtime, size) of every policy file present: what a change alters."""
    marks = []
    for name in POLICY_FILES:
        try:
            stat = os.stat(directory / name)
        except OSError:
            continue  # a missing file is part of the fingerprint by its absence
        marks.append((name, stat.st_mtime_ns, stat.st_size))
    return tuple(marks)


def restart_needed(running: Policy, new: Policy) -> PolicyIssue | None:
    """Listening sockets and the media process model are fixed at start."""
    if _listeners(running) != _listeners(new):
        return PolicyIssue(
            "interfaces.yaml", 0, "listening addresses changed: restart the SBC to apply them"
        )
    old_media, new_media = running.settings.media, new.settings.media
    if (old_media.anchor, old_media.workers) != (new_media.anchor, new_media.workers):
        return PolicyIssue("sbc.yaml", 0, "media.anchor and media.workers change only at restart")
    return None


def _listeners(policy: Policy) -> set[tuple[str, str, int, frozenset[str]]]:
    return {(i.name, i.address, i.port, i.transports) for i in policy.interfaces.values()}
