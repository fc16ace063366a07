"""UDP over real loopback sockets: receive, reply from the interface address."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from sbc.transport import UDP, Inbound, Peer, TransportManager
from sbc.transport.limits import TransportLimits

WAIT = 5.0
Run = Callable[[Awaitable[Any]], Any]


class Client(asyncio.DatagramProtocol):
    """A UDP peer: remembers every datagram and who sent it."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr))

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    async def next(self) -> tuple[bytes, tuple[str, int]]:
        return await asyncio.wait_for(self.received.get(), WAIT)


async def udp_client(host: str = "127.0.0.1") -> Client:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_datagram_endpoint(Client, local_addr=(host, 0))
    return client


def test_receive_reports_source_and_reply_leaves_from_interface(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    async def scenario() -> None:
        manager = TransportManager(inbox.on_message)
        await manager.listen("ext", "127.0.0.1", 0, ["udp"])
        local = manager.bound("ext", "udp")
        client = await udp_client()
        try:
            client.sendto(make_sip(), local)
            inbound = await inbox.message()
            assert inbound.data == make_sip()
            assert inbound.source == Peer(UDP, *client.address)
            assert inbound.interface == "ext"
            assert inbound.local == local
            assert inbound.connection is None

            manager.send("ext", b"SIP/2.0 200 OK\r\n\r\n", inbound.source)
            data, sender = await client.next()
            assert data == b"SIP/2.0 200 OK\r\n\r\n"
            assert sender == local
            stats = manager.stats
            assert (stats.received, stats.sent, stats.dropped) == (1, 1, 0)
        finally:
            await manager.close()

    run(scenario())


def test_each_interface_sends_from_its_own_address(run: Run, inbox: Any) -> None:
    async def scenario() -> None:
        manager = TransportManager(inbox.on_message)
        await manager.listen("ext", "127.0.0.1", 0, ["udp"])
        await manager.listen("int", "127.0.0.2", 0, ["udp"])
        client = await udp_client()
        try:
            manager.send("int", b"hello", Peer(UDP, *client.address))
            _, sender = await client.next()
            assert sender == manager.bound("int", "udp")
            assert sender[0] == "127.0.0.2"
        finally:
            await manager.close()

    run(scenario())


def test_crlf_keepalives_and_oversized_datagrams_are_dropped(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    async def scenario() -> None:
        manager = TransportManager(inbox.on_message, limits=TransportLimits(max_udp_message=300))
        await manager.listen("ext", "127.0.0.1", 0, ["udp"])
        local = manager.bound("ext", "udp")
        client = await udp_client()
        try:
            client.sendto(b"\r\n\r\n", local)
            client.sendto(b"\r\n", local)
            client.sendto(make_sip(body=b"x" * 400), local)
            client.sendto(make_sip(), local)
            inbound = await inbox.message()
            assert inbound.data == make_sip()
            assert inbox.messages.empty()
            stats = manager.stats
            assert stats.keepalives == 2
            assert stats.dropped == 1
            assert stats.received == 1
        finally:
            await manager.close()

    run(scenario())


def test_burst_is_fully_drained(run: Run, inbox: Any, make_sip: Callable[..., bytes]) -> None:
    async def scenario() -> None:
        manager = TransportManager(inbox.on_message)
        await manager.listen("ext", "127.0.0.1", 0, ["udp"])
        client = await udp_client()
        try:
            sent = [make_sip(branch=f"z9hG4bK{index}") for index in range(200)]
            for data in sent:
                client.sendto(data, manager.bound("ext", "udp"))
            received = [(await inbox.message()).data for _ in sent]
            assert received == sent
        finally:
            await manager.close()

    run(scenario())


def test_callback_exception_does_not_stop_the_listener(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    calls = 0

    def flaky(inbound: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("core bug")
        inbox.on_message(inbound)

    async def scenario() -> None:
        manager = TransportManager(flaky)
        await manager.listen("ext", "127.0.0.1", 0, ["udp"])
        client = await udp_client()
        try:
            client.sendto(make_sip(branch="z9hG4bKa"), manager.bound("ext", "udp"))
            client.sendto(make_sip(branch="z9hG4bKb"), manager.bound("ext", "udp"))
            assert (await inbox.message()).data == make_sip(branch="z9hG4bKb")
            assert manager.stats.errors == 1
        finally:
            await manager.close()

    run(scenario())


def test_send_problems_are_reported_not_raised(run: Run, inbox: Any) -> None:
    async def scenario() -> None:
        manager = TransportManager(inbox.on_message, on_transport_error=inbox.on_error)
        await manager.listen("ext", "127.0.0.1", 0, ["udp"])
        try:
            nowhere = Peer(UDP, "127.0.0.1", 9)
            manager.send("missing", b"x", nowhere)
            assert inbox.errors.empty()  # reported on a later loop iteration
            peer, reason = await inbox.error()
            assert peer == nowhere
            assert "missing" in reason
            manager.send("ext", b"x", Peer("sctp", "127.0.0.1", 9))
            assert "sctp" in (await inbox.error())[1]
            manager.send("ext", b"x", Peer(UDP, "::1", 9))
            assert "udp send failed" in (await inbox.error())[1]
            assert manager.stats.dropped == 3
        finally:
            await manager.close()

    run(scenario())


def test_listen_validates_and_shares_the_port(run: Run, inbox: Any) -> None:
    async def scenario() -> None:
        manager = TransportManager(inbox.on_message)
        try:
            with pytest.raises(ValueError, match="transports"):
                await manager.listen("ext", "127.0.0.1", 0, ["tls"])
            await manager.listen("ext", "127.0.0.1", 0, ["udp", "tcp"])
            assert manager.bound("ext", "udp") == manager.bound("ext", "tcp")
            assert manager.bound("ext", "udp")[1] != 0
            with pytest.raises(ValueError, match="already"):
                await manager.listen("ext", "127.0.0.1", 0, ["udp"])
            await manager.listen("udponly", "127.0.0.1", 0, ["UDP"])
            with pytest.raises(KeyError):
                manager.bound("udponly", "tcp")
        finally:
            await manager.close()

    run(scenario())


def test_queueing_delay_is_measured_from_kernel_stamps() -> None:
    """A datagram left waiting in the receive buffer reports how long it waited."""
    if not sys.platform.startswith("linux"):
        pytest.skip("kernel arrival stamps (SO_TIMESTAMPNS) are Linux-only")
    got: list[Inbound] = []

    async def scenario() -> None:
        manager = TransportManager(got.append)
        await manager.listen("ext", "127.0.0.1", 0, ["udp"])
        host, port = manager.bound("ext", "udp")
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.sendto(b"OPTIONS sip:x SIP/2.0\r\n\r\n", (host, port))
            time.sleep(0.2)  # the loop is blocked: the datagram waits in the kernel
            deadline = loop.time() + 5
            while not got and loop.time() < deadline:
                await asyncio.sleep(0.01)
        await manager.close()

    asyncio.run(scenario())
    assert len(got) == 1
    assert got[0].queued >= 0.15
