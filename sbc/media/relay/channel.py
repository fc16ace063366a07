"""A framed, non-blocking message channel between the signalling process and a worker.

Each message is a 4-byte big-endian length followed by a pickle. Sending
never blocks the event loop: what the socket does not take at once is kept
and flushed when it becomes writable (``loop.add_writer``); received bytes
are reassembled into messages from ``loop.add_reader``. Both ends trust each
other (same program, a socketpair), which is what makes pickle acceptable.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
from collections.abc import Callable
from typing import Any

_LENGTH = struct.Struct("!I")
_RECV_SIZE = 1 << 18


class Channel:
    """Pickled messages over a connected stream socket, driven by the loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        on_message: Callable[[Any], None],
        on_close: Callable[[], None],
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._on_message = on_message
        self._on_close = on_close
        self._inbox = bytearray()
        self._outbox = bytearray()
        self._closed = False
        sock.setblocking(False)
        loop.add_reader(self._fd, self._readable)

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, message: object) -> None:
        """Queue ``message``; written now if the socket takes it, else when writable."""
        if self._closed:
            return
        payload = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        pending = bool(self._outbox)
        self._outbox += _LENGTH.pack(len(payload))
        self._outbox += payload
        if not pending:
            self._flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        self._sock.close()

    def _flush(self) -> None:
        try:
            sent = self._sock.send(self._outbox)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._lost()
            return
        del self._outbox[:sent]
        if self._outbox:
            self._loop.add_writer(self._fd, self._flush)
        else:
            self._loop.remove_writer(self._fd)

    def _readable(self) -> None:
        try:
            data = self._sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._lost()
            return
        self._inbox += data
        while len(self._inbox) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._inbox)
            end = _LENGTH.size + length
            if len(self._inbox) < end:
                break
            message = pickle.loads(self._inbox[_LENGTH.size : end])
            del self._inbox[:end]
            self._on_message(message)
            if self._closed:
                return

    def _lost(self) -> None:
        self.close()
        self._on_close()
