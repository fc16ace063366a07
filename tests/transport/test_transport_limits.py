"""Edge limits on real loopback sockets: slots per source, the reserve, deadlines, size caps.

The attacker and the other peers are distinct loopback addresses, so the
per-source rules see them as different hosts. Every wait is bounded; a
deadline is shown by the connection closing, never by timing it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import pytest

from sbc.transport import (
    TCP,
    Peer,
    Screening,
    TransportLimits,
    TransportManager,
    TransportStats,
)
from sbc.transport.gate import AcceptGate
from sbc.transport.limits import ConnectionLedger, source_key

WAIT = 5.0
Run = Callable[[Awaitable[Any]], Any]
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]

ATTACKER = "127.0.0.66"
OTHER = "127.0.0.67"
THIRD = "127.0.0.68"
TRUNK = "127.0.0.10"


async def connect_from(source: str, address: tuple[str, int]) -> Streams:
    return await asyncio.wait_for(asyncio.open_connection(*address, local_addr=(source, 0)), WAIT)


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """True once the other side closed or aborted (bounded wait: a hang fails)."""
    try:
        while await asyncio.wait_for(reader.read(65536), WAIT):
            pass  # pongs, or nothing: read until the end
    except ConnectionResetError:
        pass
    return True


async def eventually(predicate: Callable[[], bool]) -> None:
    for _ in range(int(WAIT / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    assert predicate()


def close_all(held: list[Streams]) -> None:
    for _, writer in held:
        writer.close()


def screen_of(*, refused: Collection[str] = (), trunks: Collection[str] = ()) -> Any:
    """A runtime screen: ``refused`` hosts are refused, ``trunks`` are trunks; records calls."""
    asked: list[tuple[str, str]] = []

    def screen(host: str, interface: str) -> Screening:
        asked.append((host, interface))
        if host in refused:
            return Screening.REFUSE
        return Screening.TRUNK if host in trunks else Screening.STRANGER

    screen.asked = asked  # type: ignore[attr-defined]
    return screen


async def tcp_manager(inbox: Any, limits: TransportLimits, **options: Any) -> TransportManager:
    manager = TransportManager(inbox.on_message, limits=limits, **options)
    await manager.listen("ext", "127.0.0.1", 0, ["tcp"])
    return manager


async def accepted(source: str, manager: TransportManager, inbox: Any, message: bytes) -> Streams:
    """A connection from ``source`` that carried a message (so it holds a slot)."""
    streams = await connect_from(source, manager.bound("ext", "tcp"))
    streams[1].write(message)
    assert (await inbox.message()).source.host == source
    return streams


# -- connection slots -----------------------------------------------------------


def test_a_source_holds_at_most_its_cap(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    async def scenario() -> None:
        manager = await tcp_manager(inbox, TransportLimits(max_connections_per_source=2))
        address = manager.bound("ext", "tcp")
        held = [await accepted(ATTACKER, manager, inbox, make_sip()) for _ in range(2)]
        try:
            extra = await connect_from(ATTACKER, address)
            held.append(extra)
            assert await closed_by_peer(extra[0])
            assert manager.stats.refused_per_source == 1
            # Another host is not affected, and a slot given back can be taken again.
            held.append(await accepted(OTHER, manager, inbox, make_sip()))
            held[0][1].close()
            await eventually(lambda: manager.stats.connections == 2)
            held.append(await accepted(ATTACKER, manager, inbox, make_sip()))
            assert manager.stats.refused_per_source == 1
        finally:
            close_all(held)
            await manager.close()

    run(scenario())


def test_a_refused_source_is_closed_at_accept(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    async def scenario() -> None:
        screen = screen_of(refused={ATTACKER})
        manager = await tcp_manager(inbox, TransportLimits(), screen=screen)
        address = manager.bound("ext", "tcp")
        held: list[Streams] = []
        try:
            reader, writer = await connect_from(ATTACKER, address)
            held.append((reader, writer))
            with contextlib.suppress(ConnectionError):
                writer.write(make_sip())
            assert await closed_by_peer(reader)
            held.append(await accepted(OTHER, manager, inbox, make_sip()))
            assert inbox.messages.empty()  # nothing of the refused source was read
            assert manager.stats.refused_screened == 1
            assert screen.asked == [(ATTACKER, "ext"), (OTHER, "ext")]
        finally:
            close_all(held)
            await manager.close()

    run(scenario())


def test_strangers_cannot_take_the_reserved_slots(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    async def scenario() -> None:
        limits = TransportLimits(max_connections=3, reserved_outbound_connections=1)
        manager = await tcp_manager(inbox, limits, on_transport_error=inbox.on_error)
        address = manager.bound("ext", "tcp")
        held = [await accepted(ATTACKER, manager, inbox, make_sip()) for _ in range(2)]
        servers: list[asyncio.Server] = []
        got: asyncio.Queue[bytes] = asyncio.Queue()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.put_nowait(await reader.read(65536))
            await reader.read()

        try:
            extra = await connect_from(OTHER, address)
            held.append(extra)
            assert await closed_by_peer(extra[0])
            assert manager.stats.refused_pool_full == 1
            # The SBC's own connection still opens, in the reserve...
            servers.append(await asyncio.start_server(serve, "127.0.0.1", 0))
            dest = Peer(TCP, *servers[0].sockets[0].getsockname()[:2])
            manager.send("ext", make_sip(), dest)
            assert await asyncio.wait_for(got.get(), WAIT) == make_sip()
            # ...and beyond every slot even it is refused.
            servers.append(await asyncio.start_server(serve, "127.0.0.1", 0))
            beyond = Peer(TCP, *servers[1].sockets[0].getsockname()[:2])
            manager.send("ext", make_sip(), beyond)
            peer, reason = await inbox.error()
            assert peer == beyond
            assert "connection limit" in reason
        finally:
            close_all(held)
            await manager.close()
            for server in servers:
                server.close()

    run(scenario())


def test_a_trunk_has_its_own_cap_and_may_use_the_reserve(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    async def scenario() -> None:
        limits = TransportLimits(
            max_connections=4,
            reserved_outbound_connections=2,
            max_connections_per_source=1,
            max_connections_per_trunk_source=3,
        )
        manager = await tcp_manager(inbox, limits, screen=screen_of(trunks={TRUNK}))
        address = manager.bound("ext", "tcp")
        held = [await accepted(ATTACKER, manager, inbox, make_sip())]
        try:
            second = await connect_from(ATTACKER, address)
            held.append(second)
            assert await closed_by_peer(second[0])  # the stranger's cap is 1
            held.append(await accepted(OTHER, manager, inbox, make_sip()))
            third = await connect_from(THIRD, address)  # strangers fill 4 - 2 slots
            held.append(third)
            assert await closed_by_peer(third[0])
            # The trunk gets the reserve.
            held += [await accepted(TRUNK, manager, inbox, make_sip()) for _ in range(2)]
            beyond = await connect_from(TRUNK, address)  # but never more than the pool
            held.append(beyond)
            assert await closed_by_peer(beyond[0])
            stats = manager.stats
            assert (stats.refused_per_source, stats.refused_pool_full) == (1, 2)
        finally:
            close_all(held)
            await manager.close()

    run(scenario())


def test_new_limits_apply_to_the_next_connection(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    async def scenario() -> None:
        manager = await tcp_manager(inbox, TransportLimits())
        address = manager.bound("ext", "tcp")
        held = [await accepted(ATTACKER, manager, inbox, make_sip()) for _ in range(2)]
        try:
            manager.set_limits(TransportLimits(max_connections_per_source=2))
            extra = await connect_from(ATTACKER, address)
            held.append(extra)
            assert await closed_by_peer(extra[0])
            held[0][1].write(make_sip())  # the connections already held go on
            assert (await inbox.message()).data == make_sip()
        finally:
            close_all(held)
            await manager.close()

    run(scenario())


# -- deadlines ------------------------------------------------------------------


def test_a_half_sent_message_is_closed_at_its_deadline_whatever_trickles_in(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    async def scenario() -> None:
        manager = await tcp_manager(inbox, TransportLimits(message_timeout=0.3))
        reader, writer = await accepted(ATTACKER, manager, inbox, make_sip())

        async def trickle() -> None:  # a byte every 20 ms: never idle, never complete
            writer.write(make_sip()[:20])
            with contextlib.suppress(ConnectionError):
                for _ in range(int(WAIT / 0.02)):
                    writer.write(b"x")
                    await asyncio.sleep(0.02)

        task = asyncio.create_task(trickle())
        try:
            assert await closed_by_peer(reader)
            assert manager.stats.message_timeouts == 1
            assert inbox.messages.empty()
        finally:
            task.cancel()
            writer.close()
            await manager.close()

    run(scenario())


def test_keepalives_keep_a_connection_but_not_a_silent_new_one(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    async def scenario() -> None:
        manager = await tcp_manager(inbox, TransportLimits(message_timeout=0.3))
        address = manager.bound("ext", "tcp")
        flow = await accepted(OTHER, manager, inbox, make_sip())
        fresh = await connect_from(ATTACKER, address)

        async def ping(writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                for _ in range(int(WAIT / 0.05)):
                    writer.write(b"\r\n\r\n")
                    await asyncio.sleep(0.05)

        tasks = [asyncio.create_task(ping(flow[1])), asyncio.create_task(ping(fresh[1]))]
        try:
            # A connection that never sent a message does not live on pings...
            assert await closed_by_peer(fresh[0])
            assert manager.stats.message_timeouts == 1
            # ...while a flow that did (RFC 5626 §3.5.1) is kept alive by them.
            tasks[0].cancel()
            assert flow[0].at_eof() is False
            flow[1].write(make_sip())
            assert (await inbox.message()).source.host == OTHER
            assert manager.stats.message_timeouts == 1
        finally:
            for task in tasks:
                task.cancel()
            close_all([flow, fresh])
            await manager.close()

    run(scenario())


# -- message sizes ----------------------------------------------------------------


def padded(make_sip: Callable[..., bytes], header: int, body: int) -> bytes:
    """A request whose header section has about ``header`` bytes and a ``body``-byte body."""
    base = make_sip(body=b"b" * body)
    return base.replace(b"Content-Length", b"X-Pad: " + b"p" * header + b"\r\nContent-Length")


def sized(make_sip: Callable[..., bytes], size: int) -> bytes:
    """A request of exactly ``size`` bytes (its body pads it)."""
    body = size - len(make_sip())
    message = make_sip(body=b"x" * body)
    body -= len(message) - size  # the Content-Length value took more digits
    message = make_sip(body=b"x" * body)
    assert len(message) == size
    return message


def test_a_stream_message_is_capped_as_a_whole(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    async def scenario() -> None:
        manager = await tcp_manager(inbox, TransportLimits(max_stream_message=1000))
        fits = padded(make_sip, 200, 500)
        over = padded(make_sip, 500, 600)  # each part under 1000, the whole over it
        assert len(fits) < 1000 < len(over)
        reader, writer = await accepted(ATTACKER, manager, inbox, fits)
        try:
            writer.write(over + make_sip())
            assert await closed_by_peer(reader)
            assert inbox.messages.empty()
        finally:
            writer.close()
            await manager.close()

    run(scenario())


def test_datagrams_over_the_default_cap_are_dropped_and_counted(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    async def scenario() -> None:
        manager = TransportManager(inbox.on_message)
        await manager.listen("ext", "127.0.0.1", 0, ["udp"])
        local = manager.bound("ext", "udp")
        loop = asyncio.get_running_loop()
        sender, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, ("127.0.0.1", 0))
        cap = TransportLimits().max_udp_message
        assert cap == 16384
        try:
            sender.sendto(sized(make_sip, cap + 1), local)
            sender.sendto(sized(make_sip, cap), local)
            assert len((await inbox.message()).data) == cap
            assert inbox.messages.empty()
            assert manager.stats.oversized_datagrams == 1
            # A reload lowers the cap for the next datagram.
            manager.set_limits(TransportLimits(max_udp_message=len(make_sip())))
            sender.sendto(make_sip(body=b"x"), local)
            sender.sendto(make_sip(), local)
            assert (await inbox.message()).data == make_sip()
            assert manager.stats.oversized_datagrams == 2
        finally:
            sender.close()
            await manager.close()

    run(scenario())


# -- the ledger, without sockets ------------------------------------------------


def test_ledger_counts_sources_and_releases_once() -> None:
    limits = TransportLimits(
        max_connections=4, reserved_outbound_connections=1, max_connections_per_source=2
    )
    ledger = ConnectionLedger(limits)
    assert ledger.refusal("a", Screening.REFUSE) == "screened"
    ledger.take(1, "a")
    ledger.take(2, "a")
    ledger.take(2, "a")  # taken twice: still one slot
    assert ledger.refusal("a", Screening.STRANGER) == "per_source"
    assert ledger.refusal("b", Screening.STRANGER) is None
    ledger.take(3, "b")
    assert ledger.refusal("c", Screening.STRANGER) == "pool_full"
    assert ledger.refusal("c", Screening.TRUNK) is None
    assert not ledger.outbound_full()
    ledger.take(4, None)
    assert ledger.outbound_full()
    assert ledger.refusal("c", Screening.TRUNK) == "pool_full"
    for ident in (1, 1, 4):
        ledger.release(ident)
    assert (ledger.total, ledger.held_by("a")) == (2, 1)
    ledger.release(2)
    assert ledger.held_by("a") == 0


def test_ledger_caps_handshakes_per_source() -> None:
    ledger = ConnectionLedger(TransportLimits(max_tls_handshakes_per_source=1))
    ledger.handshake_started("a")
    assert ledger.refusal("a", Screening.STRANGER, tls=True) == "handshakes"
    assert ledger.refusal("a", Screening.STRANGER) is None  # plain TCP has no handshake
    assert ledger.refusal("b", Screening.STRANGER, tls=True) is None
    ledger.handshake_ended("a")
    assert ledger.refusal("a", Screening.STRANGER, tls=True) is None


def test_sources_are_counted_per_ipv4_address_and_ipv6_slash_64() -> None:
    assert source_key("192.0.2.7") == "192.0.2.7"
    assert source_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert source_key("2001:db8:1:2::5") == source_key("2001:db8:1:2:ffff::9")
    assert source_key("2001:db8:1:2::5") == "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:3::5") != source_key("2001:db8:1:2::5")


def test_limits_refuse_a_reserve_as_large_as_the_pool() -> None:
    with pytest.raises(ValueError, match="reserved"):
        TransportLimits(max_connections=10, reserved_outbound_connections=10)


def test_gate_counts_every_refusal_and_survives_a_broken_screen() -> None:
    stats = TransportStats()
    gate = AcceptGate(TransportLimits(), screen_of(refused={ATTACKER}), stats)
    assert gate.admit(1, ATTACKER, "ext") is None
    assert gate.admit(2, ATTACKER, "ext", tls=True) is None
    assert stats.refused_screened == 2
    assert gate.admit(3, OTHER, "ext", tls=True) == OTHER
    assert gate.ledger.refusal(OTHER, Screening.STRANGER, tls=True) is None  # 1 of 20

    def broken(_host: str, _interface: str) -> Screening:
        raise RuntimeError("bug")

    lenient = AcceptGate(TransportLimits(), broken, TransportStats())
    assert lenient.admit(1, ATTACKER, "ext") == ATTACKER  # the caps still apply
