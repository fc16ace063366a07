"""The relay in worker processes: :class:`WorkerPool` implements ``RelayControl``.

The signalling process spawns N workers (default one per spare core), each
running its own event loop (uvloop when importable) with a
:class:`~sbc.media.relay.engine.RelayEngine`. A session lives in one worker
(least-loaded at its first update), so all its streams share a process.

Control channel (:mod:`.channel`, a socketpair, pickled tuples):

- parent -> worker: ``("update", StreamSpec)``, ``("remove", session, index)``,
  ``("delete", session)``, ``("dtmf", session, index, leg, digit, duration_ms)``
  (inject a digit towards ``leg``);
- worker -> parent: ``("ready", pid)``, ``("stats", {session: [StreamStats]})``
  every ``stats_interval`` seconds, ``("inactive", session)``,
  ``("dtmf", session, leg, digit, duration_ms)`` (a digit taken out of the
  stream from ``leg``, for ``on_dtmf``) and
  ``("failed", session, reason)`` (a local port could not be bound).

Sending never blocks the signalling loop. A worker that dies (its process
sentinel becomes readable, or the channel hits EOF) is reported through
``on_lost(session, reason)`` for each of its sessions, so the b2bua can tear
those calls down; a fresh worker takes its place for new sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any

from sbc.media.control import DtmfCallback, StreamSpec, StreamStats
from sbc.media.relay.channel import Channel
from sbc.media.relay.engine import DEFAULT_INACTIVITY_TIMEOUT, RelayEngine

log = logging.getLogger(__name__)

DEFAULT_STATS_INTERVAL = 1.0
JOIN_TIMEOUT = 5.0
WORKER_DIED = "media worker died"


def default_worker_count() -> int:
    return max(1, (os.cpu_count() or 1) - 1)


class _Worker:
    """The parent's handle on one worker process."""

    def __init__(self, process: BaseProcess, channel: Channel) -> None:
        self.process = process
        self.channel = channel
        self.sessions: set[str] = set()
        self.ready = asyncio.get_running_loop().create_future()
        self.alive = True

    @property
    def pid(self) -> int:
        return self.process.pid or 0


class WorkerPool:
    """``RelayControl`` backed by relay engines in worker processes."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        on_lost: Callable[[str, str], None] | None = None,
        on_inactive: Callable[[str], None] | None = None,
        inactivity_timeout: float = DEFAULT_INACTIVITY_TIMEOUT,
        stats_interval: float = DEFAULT_STATS_INTERVAL,
        respawn: bool = True,
        on_dtmf: DtmfCallback | None = None,
    ) -> None:
        self._count = workers if workers is not None else default_worker_count()
        self._on_lost = on_lost
        self._on_inactive = on_inactive
        self._on_dtmf = on_dtmf
        self._timeout = inactivity_timeout
        self._stats_interval = stats_interval
        self._respawn = respawn
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._placement: dict[str, _Worker] = {}
        self._snapshots: dict[str, list[StreamStats]] = {}
        self._closing = False

    # -- lifecycle ------------------------------------------------------------

    async def start(self, timeout: float = 30.0) -> None:
        """Spawn the workers and wait until each has its loop running."""
        workers = [self._spawn() for _ in range(self._count)]
        await asyncio.wait_for(asyncio.gather(*(w.ready for w in workers)), timeout)

    async def close(self) -> None:
        """Terminate every worker by PID and join it (SIGKILL after a grace period)."""
        self._closing = True
        for worker in self._workers:
            self._forget(worker)
            if worker.process.is_alive():
                worker.process.terminate()
        for worker in self._workers:
            await _join(worker.process, JOIN_TIMEOUT)
        self._workers.clear()
        self._placement.clear()
        self._snapshots.clear()

    # -- RelayControl ---------------------------------------------------------

    def update(self, stream: StreamSpec) -> None:
        worker = self._placement.get(stream.session)
        if worker is None:
            worker = self._least_loaded()
            worker.sessions.add(stream.session)
            self._placement[stream.session] = worker
        worker.channel.send(("update", stream))

    def remove(self, session: str, index: int) -> None:
        worker = self._placement.get(session)
        if worker is not None:
            worker.channel.send(("remove", session, index))

    def delete(self, session: str) -> None:
        self._snapshots.pop(session, None)
        worker = self._placement.pop(session, None)
        if worker is not None:
            worker.sessions.discard(session)
            worker.channel.send(("delete", session))

    def send_dtmf(self, session: str, index: int, leg: str, digit: str, duration_ms: int) -> None:
        worker = self._placement.get(session)
        if worker is not None:
            worker.channel.send(("dtmf", session, index, leg, digit, duration_ms))

    def stats(self, session: str) -> list[StreamStats]:
        """The snapshot last pushed by the session's worker (empty if none yet)."""
        return self._snapshots.get(session, [])

    # -- introspection ----------------------------------------------------------

    def pids(self) -> list[int]:
        return [w.pid for w in self._workers if w.alive]

    def pid_of(self, session: str) -> int | None:
        worker = self._placement.get(session)
        return None if worker is None else worker.pid

    # -- internals --------------------------------------------------------------

    def _least_loaded(self) -> _Worker:
        alive = [w for w in self._workers if w.alive]
        if not alive:
            raise RuntimeError("no media worker running")
        return min(alive, key=lambda w: len(w.sessions))

    def _spawn(self) -> _Worker:
        loop = asyncio.get_running_loop()
        parent_end, child_end = socket.socketpair()
        process = self._context.Process(
            target=_worker_main,
            args=(child_end, self._timeout, self._stats_interval),
            name="sbc-media",
            daemon=True,
        )
        process.start()
        child_end.close()
        holder: list[_Worker] = []
        channel = Channel(
            loop,
            parent_end,
            lambda message: self._on_message(holder[0], message),
            lambda: self._on_dead(holder[0]),
        )
        worker = _Worker(process, channel)
        holder.append(worker)
        self._workers.append(worker)
        loop.add_reader(process.sentinel, self._on_dead, worker)
        return worker

    def _on_message(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "stats":
            snapshots: dict[str, list[StreamStats]] = message[1]
            for session, streams in snapshots.items():
                if self._placement.get(session) is worker:
                    self._snapshots[session] = streams
        elif kind == "inactive":
            if self._placement.get(message[1]) is worker and self._on_inactive is not None:
                self._on_inactive(message[1])
        elif kind == "dtmf":
            if self._placement.get(message[1]) is worker and self._on_dtmf is not None:
                try:
                    self._on_dtmf(message[1], message[2], message[3], message[4])
                except Exception:
                    log.exception("on_dtmf failed for session %s", message[1])
        elif kind == "failed":
            if self._placement.get(message[1]) is worker:
                self._lose(message[1], f"media relay failed: {message[2]}")
        elif kind == "ready" and not worker.ready.done():
            worker.ready.set_result(None)

    def _on_dead(self, worker: _Worker) -> None:
        if not worker.alive:
            return
        self._forget(worker)
        self._workers.remove(worker)
        log.error("media worker %d died with %d sessions", worker.pid, len(worker.sessions))
        for session in sorted(worker.sessions):
            self._lose(session, WORKER_DIED)
        worker.sessions.clear()
        with contextlib.suppress(ValueError):
            worker.process.join(0)
        if self._respawn and not self._closing:
            self._spawn()

    def _forget(self, worker: _Worker) -> None:
        """Stop watching ``worker`` (no more callbacks from it)."""
        worker.alive = False
        loop = asyncio.get_running_loop()
        loop.remove_reader(worker.process.sentinel)
        worker.channel.close()

    def _lose(self, session: str, reason: str) -> None:
        worker = self._placement.pop(session, None)
        if worker is not None:
            worker.sessions.discard(session)
        self._snapshots.pop(session, None)
        if self._on_lost is not None:
            try:
                self._on_lost(session, reason)
            except Exception:
                log.exception("on_lost failed for session %s", session)


async def _join(process: BaseProcess, timeout: float) -> None:
    """Wait for ``process`` to exit without blocking the loop; SIGKILL if it will not."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while process.is_alive() and loop.time() < deadline:
        await asyncio.sleep(0.02)
    if process.is_alive():
        process.kill()
        while process.is_alive():
            await asyncio.sleep(0.02)
    process.join(0)


# -- the worker process -------------------------------------------------------


def _worker_main(sock: socket.socket, inactivity_timeout: float, stats_interval: float) -> None:
    """Entry point of a worker process: serve the channel until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(sock, inactivity_timeout, stats_interval))
    else:
        uvloop.run(_serve(sock, inactivity_timeout, stats_interval))


async def _serve(sock: socket.socket, inactivity_timeout: float, stats_interval: float) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    holder: list[Channel] = []
    engine = RelayEngine(
        lambda s: holder[0].send(("inactive", s)),
        inactivity_timeout,
        on_dtmf=lambda *digit: holder[0].send(("dtmf", *digit)),
    )

    def on_message(message: tuple[Any, ...]) -> None:
        if message[0] == "update":
            spec: StreamSpec = message[1]
            try:
                engine.update(spec)
            except OSError as exc:
                engine.delete(spec.session)
                holder[0].send(("failed", spec.session, str(exc)))
        elif message[0] == "remove":
            engine.remove(message[1], message[2])
        elif message[0] == "delete":
            engine.delete(message[1])
        elif message[0] == "dtmf":
            engine.send_dtmf(*message[1:])

    def on_close() -> None:
        if not done.done():
            done.set_result(None)

    channel = Channel(loop, sock, on_message, on_close)
    holder.append(channel)
    channel.send(("ready", os.getpid()))
    pusher = loop.create_task(_push_stats(engine, channel, stats_interval))
    await done
    pusher.cancel()
    engine.close()


#: Stats go out in this many slices per interval: snapshotting and pickling
#: every session at once stalls the forwarding loop for milliseconds (p99
#: latency) once there are hundreds of calls.
_STATS_SLICES = 10


async def _push_stats(engine: RelayEngine, channel: Channel, interval: float) -> None:
    """Every session's stats reach the parent once per ``interval``, a slice
    at a time, so no single push holds the loop for long."""
    pause = interval / _STATS_SLICES
    while not channel.closed:
        sessions = engine.sessions()
        if not sessions:
            await asyncio.sleep(interval)
            continue
        size = -(-len(sessions) // _STATS_SLICES)  # ceiling division
        for start in range(0, len(sessions), size):
            await asyncio.sleep(pause)
            if channel.closed:
                return
            chunk = {s: engine.stats(s) for s in sessions[start : start + size]}
            channel.send(("stats", chunk))
