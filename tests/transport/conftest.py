"""Shared fixtures for real-socket transport tests (loopback, port 0).

Every test runs on both the stdlib loop and uvloop, since production uses
uvloop and its socket internals differ. pytest-asyncio is not used: each
test drives its scenario with an ``asyncio.Runner``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import uvloop

from sbc.transport import Inbound, Peer

#: Upper bound for any single wait in these tests; never a timing assertion.
WAIT = 5.0

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


Run = Callable[[Awaitable[Any]], Any]


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Iterator[Run]:
    """Run a coroutine to completion on a fresh loop of the parametrized kind."""
    with asyncio.Runner(loop_factory=LOOPS[request.param]) as runner:

        def _run(coro: Awaitable[Any]) -> Any:
            return runner.run(asyncio.wait_for(coro, 4 * WAIT))

        yield _run


class Inbox:
    """Collects what the transport delivers; waits are bounded."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[Inbound] = asyncio.Queue()
        self.errors: asyncio.Queue[tuple[Peer, str]] = asyncio.Queue()

    def on_message(self, inbound: Inbound) -> None:
        self.messages.put_nowait(inbound)

    def on_error(self, peer: Peer, reason: str) -> None:
        self.errors.put_nowait((peer, reason))

    async def message(self) -> Inbound:
        return await asyncio.wait_for(self.messages.get(), WAIT)

    async def error(self) -> tuple[Peer, str]:
        return await asyncio.wait_for(self.errors.get(), WAIT)


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


def sip(method: str = "OPTIONS", body: bytes = b"", *, branch: str = "z9hG4bK1") -> bytes:
    """A small request with a correct Content-Length."""
    return (
        f"{method} sip:pbx@127.0.0.20 SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.10:5060;branch={branch}\r\n"
        f"Call-ID: test@127.0.0.10\r\nCSeq: 1 {method}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@pytest.fixture
def make_sip() -> Callable[..., bytes]:
    """The :func:`sip` builder (conftest modules are not importable from tests)."""
    return sip
