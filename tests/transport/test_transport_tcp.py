"""TCP over real loopback sockets: framing, connection reuse, idle sweep, errors."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from sbc.transport import TCP, Peer, TransportManager
from sbc.transport.limits import TransportLimits

WAIT = 5.0
Run = Callable[[Awaitable[Any]], Any]
RESPONSE = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"


async def connect(address: tuple[str, int]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(*address), WAIT)


async def read_exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(size), WAIT)


async def read_eof(reader: asyncio.StreamReader) -> bytes:
    """Everything until the other side closes (bounded wait)."""
    return await asyncio.wait_for(reader.read(), WAIT)


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """True once the other side closed or aborted (an abort shows as a reset)."""
    try:
        return await read_eof(reader) == b""
    except ConnectionResetError:
        return True


def peer_of(writer: asyncio.StreamWriter) -> Peer:
    host, port = writer.get_extra_info("sockname")[:2]
    return Peer(TCP, host, port)


class Server:
    """A plain TCP peer that counts accepted connections and collects bytes."""

    def __init__(self) -> None:
        self.accepted = 0
        self.data: asyncio.Queue[bytes] = asyncio.Queue()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> Peer:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return Peer(TCP, *self.server.sockets[0].getsockname()[:2])

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.append(writer)
        while chunk := await reader.read(65536):
            self.data.put_nowait(chunk)

    async def receive(self, size: int) -> bytes:
        buffer = b""
        while len(buffer) < size:
            buffer += await asyncio.wait_for(self.data.get(), WAIT)
        return buffer

    async def stop(self) -> None:
        assert self.server is not None
        for writer in self.writers:
            writer.close()
        self.server.close()
        await self.server.wait_closed()


def test_inbound_request_then_response_on_same_connection(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    async def scenario() -> None:
        manager = TransportManager(inbox.on_message)
        await manager.listen("ext", "127.0.0.1", 0, ["tcp"])
        local = manager.bound("ext", "tcp")
        reader, writer = await connect(local)
        try:
            request = make_sip("INVITE", b"v=0\r\n")
            writer.write(request[:10])
            writer.write(request[10:] + make_sip())
            first, second = await inbox.message(), await inbox.message()
            assert (first.data, second.data) == (request, make_sip())
            assert first.source == peer_of(writer)
            assert first.interface == "ext"
            assert first.local == local
            assert first.connection is not None
            assert first.connection == second.connection

            manager.send("ext", RESPONSE, first.source, first.connection)
            assert await read_exactly(reader, len(RESPONSE)) == RESPONSE
            stats = manager.stats
            assert (stats.received, stats.sent, stats.connections) == (2, 1, 1)
        finally:
            writer.close()
            await manager.close()

    run(scenario())


def test_response_without_connection_id_reuses_inbound_connection(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    async def scenario() -> None:
        manager = TransportManager(inbox.on_message)
        await manager.listen("ext", "127.0.0.1", 0, ["tcp"])
        reader, writer = await connect(manager.bound("ext", "tcp"))
        try:
            writer.write(make_sip())
            inbound = await inbox.message()
            manager.send("ext", RESPONSE, inbound.source)
            assert await read_exactly(reader, len(RESPONSE)) == RESPONSE
            assert manager.stats.connections_opened == 1
        finally:
            writer.close()
            await manager.close()

    run(scenario())


def test_outbound_connection_is_opened_once_and_reused(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    async def scenario() -> None:
        manager = TransportManager(inbox.on_message)
        await manager.listen("int", "127.0.0.2", 0, ["tcp"])
        server = Server()
        dest = await server.start()
        try:
            first, second = make_sip(branch="z9hG4bK1"), make_sip(branch="z9hG4bK2")
            manager.send("int", first, dest)  # queued while connecting
            manager.send("int", second, dest)  # reuses the pending connection
            assert await server.receive(len(first + second)) == first + second
            manager.send("int", first, dest)  # reuses the open connection
            assert await server.receive(len(first)) == first
            assert server.accepted == 1
            assert manager.stats.connections == 1
            assert manager.stats.sent == 3

            # It left from the interface's address, and what comes back on it
            # is delivered with the connection's id and the dest as source.
            writer = server.writers[0]
            assert writer.get_extra_info("peername")[0] == "127.0.0.2"
            writer.write(RESPONSE)
            inbound = await inbox.message()
            assert inbound.data == RESPONSE
            assert inbound.source == dest
            assert inbound.interface == "int"
            assert inbound.local == manager.bound("int", "tcp")
            assert inbound.connection is not None
        finally:
            await manager.close()
            await server.stop()

    run(scenario())


def test_each_connection_we_open_is_reported(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    """on_connected: once per connection we open, the first and each new one after a loss."""

    async def scenario() -> None:
        connected: list[Peer] = []
        manager = TransportManager(inbox.on_message, on_connected=connected.append)
        await manager.listen("int", "127.0.0.2", 0, ["tcp"])
        server = Server()
        dest = await server.start()
        try:
            message = make_sip()
            manager.send("int", message, dest)
            assert await server.receive(len(message)) == message
            assert connected == [dest]
            server.writers[0].close()  # the peer drops the connection
            for _ in range(int(WAIT / 0.02)):
                if manager.stats.connections == 0:
                    break
                await asyncio.sleep(0.02)
            manager.send("int", message, dest)
            assert await server.receive(len(message)) == message
            assert server.accepted == 2
            assert connected == [dest, dest]  # the new flow after the loss
        finally:
            await manager.close()
            await server.stop()

    run(scenario())


def test_closed_connection_id_falls_back_to_a_new_connection(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    async def scenario() -> None:
        manager = TransportManager(inbox.on_message)
        await manager.listen("int", "127.0.0.2", 0, ["udp"])  # TCP only outbound here
        server = Server()
        dest = await server.start()
        try:
            manager.send("int", make_sip(), dest, connection=12345)
            assert await server.receive(len(make_sip())) == make_sip()
            server.writers[0].write(RESPONSE)
            inbound = await inbox.message()
            assert inbound.local[0] == "127.0.0.2"  # no TCP listener: the socket name
            assert inbound.local[1] != 0
        finally:
            await manager.close()
            await server.stop()

    run(scenario())


def test_idle_connections_are_closed(run: Run, inbox: Any, make_sip: Callable[..., bytes]) -> None:
    async def scenario() -> None:
        manager = TransportManager(inbox.on_message, tcp_idle_timeout=0.2)
        await manager.listen("ext", "127.0.0.1", 0, ["tcp"])
        reader, writer = await connect(manager.bound("ext", "tcp"))
        try:
            writer.write(make_sip())
            await inbox.message()
            assert await read_eof(reader) == b""
            for _ in range(100):  # connection_lost runs right after the close
                if manager.stats.connections == 0:
                    break
                await asyncio.sleep(0.01)
            assert manager.stats.connections == 0
        finally:
            writer.close()
            await manager.close()

    run(scenario())


def test_keepalive_ping_gets_a_pong(run: Run, inbox: Any, make_sip: Callable[..., bytes]) -> None:
    async def scenario() -> None:
        manager = TransportManager(inbox.on_message)
        await manager.listen("ext", "127.0.0.1", 0, ["tcp"])
        reader, writer = await connect(manager.bound("ext", "tcp"))
        try:
            writer.write(b"\r\n\r\n")
            assert await read_exactly(reader, 2) == b"\r\n"
            writer.write(b"\r\n" + make_sip())
            assert (await inbox.message()).data == make_sip()
            assert manager.stats.keepalives == 1
            assert manager.stats.received == 1
        finally:
            writer.close()
            await manager.close()

    run(scenario())


def test_framing_error_closes_the_connection(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    async def scenario() -> None:
        manager = TransportManager(inbox.on_message)
        await manager.listen("ext", "127.0.0.1", 0, ["tcp"])
        reader, writer = await connect(manager.bound("ext", "tcp"))
        try:
            no_length = b"OPTIONS sip:a SIP/2.0\r\nCall-ID: x\r\n\r\n"
            writer.write(make_sip() + no_length + make_sip())
            # The valid message before the garbage is delivered, nothing after.
            inbound = await inbox.message()
            assert inbound.data == make_sip()
            assert await read_eof(reader) == b""
            assert inbox.messages.empty()
            # Its id is no longer usable: the reply would need a new connection.
            assert manager.stats.dropped == 1
        finally:
            writer.close()
            await manager.close()

    run(scenario())


def test_refused_connect_reports_a_transport_error(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    async def scenario() -> None:
        manager = TransportManager(inbox.on_message, on_transport_error=inbox.on_error)
        await manager.listen("ext", "127.0.0.1", 0, ["tcp"])
        # A bound but non-listening socket keeps the port ours and refuses connects.
        with socket.socket() as closed_port:
            closed_port.bind(("127.0.0.1", 0))
            dest = Peer(TCP, *closed_port.getsockname())
            try:
                manager.send("ext", make_sip(), dest)
                manager.send("ext", make_sip(), dest)  # queued on the same attempt
                peer, reason = await inbox.error()
                assert peer == dest
                assert "tcp connect failed" in reason
                assert inbox.errors.empty()
                stats = manager.stats
                assert (stats.dropped, stats.sent, stats.connections) == (2, 0, 0)
            finally:
                await manager.close()

    run(scenario())


def test_connection_limit_refuses_extra_connections(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    async def scenario() -> None:
        limits = TransportLimits(max_connections=1, reserved_outbound_connections=0)
        manager = TransportManager(inbox.on_message, limits=limits)
        await manager.listen("ext", "127.0.0.1", 0, ["tcp"])
        address = manager.bound("ext", "tcp")
        _, first = await connect(address)
        try:
            first.write(make_sip())
            await inbox.message()  # the first connection is established and registered
            reader, second = await connect(address)
            assert await closed_by_peer(reader)
            second.close()
            assert manager.stats.connections == 1
        finally:
            first.close()
            await manager.close()

    run(scenario())


def test_close_releases_everything(run: Run, inbox: Any, make_sip: Callable[..., bytes]) -> None:
    async def scenario() -> None:
        manager = TransportManager(inbox.on_message)
        await manager.listen("ext", "127.0.0.1", 0, ["tcp", "udp"])
        address = manager.bound("ext", "tcp")
        reader, writer = await connect(address)
        writer.write(make_sip())
        await inbox.message()
        await manager.close()
        assert await closed_by_peer(reader)
        writer.close()
        assert manager.stats.connections == 0
        with socket.socket() as again:  # the listening port is free again
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            again.bind(address)

    run(scenario())
