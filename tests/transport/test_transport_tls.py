"""SIP over TLS (RFC 3261 §26) on real loopback sockets, with certificates made here.

Python's ``ssl`` module plays the peer (Debian's SIPp has no TLS): a client
toward the SBC's TLS listener, a server for the SBC's outbound connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from sbc import tlsdev
from sbc.transport import TLS, Peer, Screening, TransportLimits, TransportManager
from sbc.transport import pool as pool_module
from sbc.transport.backoff import BackoffPolicy, ConnectBackoff
from sbc.transport.tls import (
    TlsClientConfig,
    TlsConfigError,
    TlsServerConfig,
    certificate_names,
    fingerprint,
    names_host,
    normalize_fingerprint,
)

WAIT = 5.0
Run = Callable[[Awaitable[Any]], Any]
RESPONSE = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


# -- certificates -------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    cert: str
    key: str

    @property
    def der(self) -> bytes:
        return ssl.PEM_cert_to_DER_cert(Path(self.cert).read_text())


@dataclass(frozen=True)
class Pki:
    ca: str  # trusted by everyone
    other_ca: str  # trusted by no one
    sbc: Pair  # the SBC's listener: 127.0.0.1
    peer: Pair  # a trunk's TLS server: 127.0.0.1 and pbx.example
    client: Pair  # a trunk's client certificate (127.0.0.1), from ca
    second_client: Pair  # another good client certificate, from ca
    stranger: Pair  # a client certificate from other_ca
    self_signed: Pair  # a trunk with no CA at all (pinned)


def _write(directory: Path, stem: str, pair: tuple[bytes, bytes]) -> Pair:
    (directory / f"{stem}.pem").write_bytes(pair[0])
    (directory / f"{stem}.key").write_bytes(pair[1])
    return Pair(str(directory / f"{stem}.pem"), str(directory / f"{stem}.key"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = tlsdev.make_ca("test CA"), tlsdev.make_ca("other CA")
    alone = tlsdev.make_ca("self-signed trunk")
    return Pki(
        ca=_write(directory, "ca", ca).cert,
        other_ca=_write(directory, "other", other).cert,
        sbc=_write(directory, "sbc", tlsdev.make_cert(ca, "sbc", ["127.0.0.1"])),
        peer=_write(directory, "peer", tlsdev.make_cert(ca, "pbx", ["pbx.example", "127.0.0.1"])),
        client=_write(directory, "client", tlsdev.make_cert(ca, "c", ["127.0.0.1"], client=True)),
        second_client=_write(directory, "client2", tlsdev.make_cert(ca, "c2", ["127.0.0.1"], True)),
        stranger=_write(directory, "stranger", tlsdev.make_cert(other, "x", ["127.0.0.1"], True)),
        self_signed=_write(directory, "alone", alone),
    )


def client_context(
    pki: Pki, cert: Pair | None = None, *, maximum: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    """A peer's client context trusting the test CA, optionally with a client certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(pki.ca)
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    if maximum is not None:
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = maximum
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the old version be offered at all
    return context


def server_context(pair: Pair, sni: list[str] | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pair.cert, pair.key)
    if sni is not None:
        context.sni_callback = lambda _obj, name, _ctx: sni.append(name)  # type: ignore[assignment,misc,func-returns-value]
    return context


# -- peers and waits ----------------------------------------------------------


async def tls_connect(address: tuple[str, int], context: ssl.SSLContext) -> Streams:
    return await asyncio.wait_for(
        asyncio.open_connection(*address, ssl=context, server_hostname="127.0.0.1"), WAIT
    )


async def refused(address: tuple[str, int], context: ssl.SSLContext, message: bytes) -> bool:
    """True if the listener ends the connection (during or right after the handshake).

    With TLS 1.3 the client finishes its handshake before the server has
    checked the client certificate, so a refusal may only show on the
    first read. A hang (accepted) fails on the bounded wait.
    """
    try:
        reader, writer = await tls_connect(address, context)
    except (ssl.SSLError, ConnectionError):
        return True
    try:
        writer.write(message)
        return await asyncio.wait_for(reader.read(), WAIT) == b""
    except (ssl.SSLError, ConnectionError):
        return True
    finally:
        writer.close()


async def eventually(predicate: Callable[[], bool]) -> None:
    """Wait (bounded) for a state the loop reaches on its own; never a timing assertion."""
    for _ in range(int(WAIT / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    assert predicate()


class TlsServer:
    """A trunk's TLS server (Python ssl): counts accepted connections, collects bytes."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.accepted = 0
        self.data: asyncio.Queue[bytes] = asyncio.Queue()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> Peer:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0, ssl=self.context)
        return Peer(TLS, *self.server.sockets[0].getsockname()[:2])

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.append(writer)
        with contextlib.suppress(ConnectionError, ssl.SSLError):
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


class LogRecorder:
    """Stands in for the pool's structlog logger to count events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def _record(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    info = warning = debug = _record

    def named(self, event: str) -> list[dict[str, Any]]:
        return [fields for name, fields in self.events if name == event]


@pytest.fixture
def pool_log(monkeypatch: pytest.MonkeyPatch) -> LogRecorder:
    recorder = LogRecorder()
    monkeypatch.setattr(pool_module, "log", recorder)
    return recorder


async def tls_manager(inbox: Any, config: TlsServerConfig, **options: Any) -> TransportManager:
    manager = TransportManager(inbox.on_message, on_transport_error=inbox.on_error, **options)
    await manager.listen("ext", "127.0.0.1", 0, ["tls"], tls=config)
    return manager


def dead_port() -> tuple[socket.socket, Peer]:
    """A bound, non-listening socket: the port stays ours and refuses connects."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, Peer(TLS, *sock.getsockname())


# -- inbound ------------------------------------------------------------------


def test_tls_request_arrives_and_response_returns_on_its_connection(
    run: Run, inbox: Any, make_sip: Callable[..., bytes], pki: Pki
) -> None:
    async def scenario() -> None:
        manager = await tls_manager(inbox, TlsServerConfig(pki.sbc.cert, pki.sbc.key))
        local = manager.bound("ext", "tls")
        reader, writer = await tls_connect(local, client_context(pki))
        try:
            writer.write(make_sip())
            inbound = await inbox.message()
            assert inbound.data == make_sip()
            assert inbound.source == Peer(TLS, *writer.get_extra_info("sockname")[:2])
            assert (inbound.interface, inbound.local) == ("ext", local)
            assert inbound.connection is not None

            manager.send("ext", RESPONSE, inbound.source, inbound.connection)
            assert await asyncio.wait_for(reader.readexactly(len(RESPONSE)), WAIT) == RESPONSE
            # Without the id, the open connection from that peer is reused.
            manager.send("ext", RESPONSE, inbound.source)
            assert await asyncio.wait_for(reader.readexactly(len(RESPONSE)), WAIT) == RESPONSE
            stats = manager.stats
            assert (stats.received, stats.sent, stats.connections) == (1, 2, 1)
            assert stats.connections_opened == 1
            assert writer.get_extra_info("ssl_object").version() in {"TLSv1.2", "TLSv1.3"}
        finally:
            writer.close()
            await manager.close()

    run(scenario())


def test_a_connection_id_of_another_transport_is_not_used(
    run: Run, inbox: Any, make_sip: Callable[..., bytes], pki: Pki
) -> None:
    """A message for a TCP peer must not leave on a TLS connection's id, nor the reverse."""

    async def scenario() -> None:
        manager = await tls_manager(inbox, TlsServerConfig(pki.sbc.cert, pki.sbc.key))
        _, writer = await tls_connect(manager.bound("ext", "tls"), client_context(pki))
        sock, dest = dead_port()
        try:
            writer.write(make_sip())
            inbound = await inbox.message()
            tcp_dest = Peer("tcp", dest.host, dest.port)
            manager.send("ext", RESPONSE, tcp_dest, inbound.connection)
            _, reason = await inbox.error()
            assert "tcp connect failed" in reason
            assert manager.stats.sent == 0
        finally:
            sock.close()
            writer.close()
            await manager.close()

    run(scenario())


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_1_1_client_is_refused(
    run: Run, inbox: Any, make_sip: Callable[..., bytes], pki: Pki, pool_log: LogRecorder
) -> None:
    async def scenario() -> None:
        manager = await tls_manager(inbox, TlsServerConfig(pki.sbc.cert, pki.sbc.key))
        address = manager.bound("ext", "tls")
        try:
            old = client_context(pki, maximum=ssl.TLSVersion.TLSv1_1)
            assert await refused(address, old, make_sip())
            assert await refused(address, old, make_sip())
            await eventually(lambda: manager.stats.tls_handshake_failures == 2)
            # Counted twice, logged once for this peer, with no key material.
            (logged,) = pool_log.named("tls_handshake_failed")
            assert logged["peer"].host == "127.0.0.1"
            assert "BEGIN" not in str(logged)
            # The listener is unharmed: a TLS 1.2 client gets through.
            modern = client_context(pki, maximum=ssl.TLSVersion.TLSv1_2)
            _, writer = await tls_connect(address, modern)
            writer.write(make_sip())
            assert (await inbox.message()).data == make_sip()
            writer.close()
            assert manager.stats.connections_opened == 1
        finally:
            await manager.close()

    run(scenario())


def test_garbage_instead_of_a_handshake_does_not_stop_the_listener(
    run: Run, inbox: Any, make_sip: Callable[..., bytes], pki: Pki
) -> None:
    async def scenario() -> None:
        manager = await tls_manager(inbox, TlsServerConfig(pki.sbc.cert, pki.sbc.key))
        address = manager.bound("ext", "tls")
        try:
            reader, writer = await asyncio.open_connection(*address)
            writer.write(make_sip())  # plain SIP on the TLS port
            with contextlib.suppress(ConnectionError):
                assert await asyncio.wait_for(reader.read(), WAIT) is not None
            writer.close()
            await eventually(lambda: manager.stats.tls_handshake_failures == 1)
            assert inbox.messages.empty()
            _, good = await tls_connect(address, client_context(pki))
            good.write(make_sip())
            assert (await inbox.message()).data == make_sip()
            good.close()
        finally:
            await manager.close()

    run(scenario())


# -- mutual TLS ---------------------------------------------------------------


def test_mutual_tls_refuses_missing_and_foreign_certificates(
    run: Run, inbox: Any, make_sip: Callable[..., bytes], pki: Pki
) -> None:
    async def scenario() -> None:
        config = TlsServerConfig(pki.sbc.cert, pki.sbc.key, pki.ca, require_client_cert=True)
        manager = await tls_manager(inbox, config)
        address = manager.bound("ext", "tls")
        try:
            assert await refused(address, client_context(pki), make_sip())
            assert await refused(address, client_context(pki, pki.stranger), make_sip())
            await eventually(lambda: manager.stats.tls_handshake_failures == 2)
            assert inbox.messages.empty()
            assert manager.stats.connections == 0

            _, writer = await tls_connect(address, client_context(pki, pki.client))
            writer.write(make_sip())
            inbound = await inbox.message()
            assert inbound.data == make_sip()
            assert inbound.source.transport == TLS
            writer.close()
        finally:
            await manager.close()

    run(scenario())


def test_pinned_client_fingerprint_mismatch_is_refused(
    run: Run, inbox: Any, make_sip: Callable[..., bytes], pki: Pki
) -> None:
    async def scenario() -> None:
        pin = fingerprint(pki.client.der).upper()
        colons = ":".join(pin[i : i + 2] for i in range(0, len(pin), 2))
        config = TlsServerConfig(
            pki.sbc.cert, pki.sbc.key, pki.ca, pinned_client_fingerprints=(colons,)
        )
        manager = await tls_manager(inbox, config)
        address = manager.bound("ext", "tls")
        try:
            # Same CA, but not the pinned certificate: verified, then refused.
            assert await refused(address, client_context(pki, pki.second_client), make_sip())
            await eventually(lambda: manager.stats.tls_handshake_failures == 1)
            assert manager.stats.connections == 0
            _, writer = await tls_connect(address, client_context(pki, pki.client))
            writer.write(make_sip())
            assert (await inbox.message()).data == make_sip()
            writer.close()
        finally:
            await manager.close()

    run(scenario())


def test_alias_needs_a_certificate_naming_the_host(
    run: Run, inbox: Any, make_sip: Callable[..., bytes], pki: Pki
) -> None:
    """RFC 5923: a request's Via alias lets its connection carry requests to its sent-by."""

    async def scenario() -> None:
        mutual = TlsServerConfig(pki.sbc.cert, pki.sbc.key, pki.ca, require_client_cert=True)
        manager = await tls_manager(inbox, mutual)
        await manager.listen(
            "int", "127.0.0.1", 0, ["tls"], tls=TlsServerConfig(pki.sbc.cert, pki.sbc.key)
        )
        try:
            reader, writer = await tls_connect(
                manager.bound("ext", "tls"), client_context(pki, pki.client)
            )
            writer.write(make_sip())
            inbound = await inbox.message()
            assert inbound.connection is not None
            sent_by = Peer(TLS, "127.0.0.1", 5061)
            assert not manager.alias(inbound.connection, Peer(TLS, "127.0.0.9", 5061))
            assert not manager.alias(inbound.connection, Peer("tcp", "127.0.0.1", 5061))
            assert manager.alias(inbound.connection, sent_by)
            manager.send("ext", RESPONSE, sent_by)
            assert await asyncio.wait_for(reader.readexactly(len(RESPONSE)), WAIT) == RESPONSE
            assert manager.stats.connections_opened == 1

            # Server-only TLS proves nothing about the client: no alias.
            _, plain = await tls_connect(manager.bound("int", "tls"), client_context(pki))
            plain.write(make_sip())
            anonymous = await inbox.message()
            assert anonymous.connection is not None
            assert not manager.alias(anonymous.connection, sent_by)
            plain.close()
            writer.close()
        finally:
            await manager.close()

    run(scenario())


# -- outbound -----------------------------------------------------------------


def test_outbound_tls_sends_sni_verifies_the_name_and_reuses_the_connection(
    run: Run, inbox: Any, make_sip: Callable[..., bytes], pki: Pki
) -> None:
    async def scenario() -> None:
        sni: list[str] = []
        server = TlsServer(server_context(pki.peer, sni))
        dest = await server.start()
        config = TlsClientConfig(cafile=pki.ca, server_hostname="pbx.example")
        manager = TransportManager(inbox.on_message, tls_clients={(dest.host, dest.port): config})
        await manager.listen("int", "127.0.0.1", 0, ["udp"])
        try:
            first, second = make_sip(branch="z9hG4bK1"), make_sip(branch="z9hG4bK2")
            manager.send("int", first, dest)  # queued during connect and handshake
            manager.send("int", second, dest)
            assert await server.receive(len(first + second)) == first + second
            manager.send("int", first, dest)
            assert await server.receive(len(first)) == first
            assert (server.accepted, sni) == (1, ["pbx.example"])
            assert manager.stats.connections == 1

            server.writers[0].write(RESPONSE)
            inbound = await inbox.message()
            assert (inbound.data, inbound.source) == (RESPONSE, dest)
            assert inbound.connection is not None
        finally:
            await manager.close()
            await server.stop()

    run(scenario())


@pytest.mark.parametrize(
    "config",
    [
        pytest.param({"server_hostname": "other.example"}, id="wrong-name"),
        pytest.param({"server_hostname": "127.0.0.2"}, id="wrong-address"),
        pytest.param({"ca": "other"}, id="untrusted-ca"),
        pytest.param({"ca": "system"}, id="system-store"),
        pytest.param({"pin": "0" * 64}, id="pin-mismatch"),
    ],
)
def test_outbound_tls_to_an_unverified_peer_is_a_transport_error(
    run: Run,
    inbox: Any,
    make_sip: Callable[..., bytes],
    pki: Pki,
    config: dict[str, str],
) -> None:
    async def scenario() -> None:
        server = TlsServer(server_context(pki.peer))
        dest = await server.start()
        cafile = {"other": pki.other_ca, "system": None}.get(config.get("ca", ""), pki.ca)
        pins = (config["pin"],) if "pin" in config else ()
        client = TlsClientConfig(cafile, config.get("server_hostname"), pinned_fingerprints=pins)
        manager = TransportManager(
            inbox.on_message,
            on_transport_error=inbox.on_error,
            tls_clients={(dest.host, dest.port): client},
        )
        await manager.listen("int", "127.0.0.1", 0, ["udp"])
        try:
            manager.send("int", make_sip(), dest)
            peer, reason = await inbox.error()
            assert peer == dest
            assert reason.startswith("tls connect failed")
            stats = manager.stats
            assert (stats.tls_handshake_failures, stats.sent, stats.connections) == (1, 0, 0)
            assert server.data.empty()
        finally:
            await manager.close()
            await server.stop()

    run(scenario())


def test_outbound_pin_alone_authenticates_a_self_signed_trunk(
    run: Run, inbox: Any, make_sip: Callable[..., bytes], pki: Pki
) -> None:
    async def scenario() -> None:
        server = TlsServer(server_context(pki.self_signed))
        dest = await server.start()
        pinned = TlsClientConfig(pinned_fingerprints=(fingerprint(pki.self_signed.der),))
        manager = TransportManager(inbox.on_message, tls_clients={(dest.host, dest.port): pinned})
        await manager.listen("int", "127.0.0.1", 0, ["udp"])
        try:
            manager.send("int", make_sip(), dest)
            assert await server.receive(len(make_sip())) == make_sip()
        finally:
            await manager.close()
            await server.stop()

    run(scenario())


def test_outbound_mutual_tls_presents_the_client_certificate(
    run: Run, inbox: Any, make_sip: Callable[..., bytes], pki: Pki
) -> None:
    async def scenario() -> None:
        context = server_context(pki.peer)
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca)
        server = TlsServer(context)
        dest = await server.start()
        config = TlsClientConfig(pki.ca, certfile=pki.client.cert, keyfile=pki.client.key)
        manager = TransportManager(inbox.on_message, tls_clients={(dest.host, dest.port): config})
        await manager.listen("int", "127.0.0.1", 0, ["udp"])
        try:
            manager.send("int", make_sip(), dest)
            assert await server.receive(len(make_sip())) == make_sip()
            presented = server.writers[0].get_extra_info("ssl_object").getpeercert(True)
            assert presented == pki.client.der
        finally:
            await manager.close()
            await server.stop()

    run(scenario())


def test_tls_to_an_unlisted_destination_without_default_is_refused(
    run: Run, inbox: Any, make_sip: Callable[..., bytes]
) -> None:
    async def scenario() -> None:
        manager = TransportManager(
            inbox.on_message, on_transport_error=inbox.on_error, tls_default=None
        )
        await manager.listen("int", "127.0.0.1", 0, ["udp"])
        try:
            manager.send("int", make_sip(), Peer(TLS, "127.0.0.1", 5061))
            _, reason = await inbox.error()
            assert "no tls settings" in reason
            assert manager.stats.connections == 0
        finally:
            await manager.close()

    run(scenario())


# -- backoff ------------------------------------------------------------------


def test_connects_to_a_dead_tls_peer_back_off(
    run: Run, inbox: Any, make_sip: Callable[..., bytes], pki: Pki
) -> None:
    async def scenario() -> None:
        async def manager_with(backoff: BackoffPolicy) -> TransportManager:
            manager = TransportManager(
                inbox.on_message,
                on_transport_error=inbox.on_error,
                tls_default=TlsClientConfig(pki.ca),
                connect_backoff=backoff,
            )
            await manager.listen("int", "127.0.0.1", 0, ["udp"])
            return manager

        # A long backoff: the second send is refused at once, with no connect
        # (none is even registered), however slow this machine is.
        slow = await manager_with(BackoffPolicy(initial=60.0, maximum=60.0))
        # A short one: once it is over, the next send connects again.
        quick = await manager_with(BackoffPolicy(initial=0.01, maximum=0.01))
        sock, dest = dead_port()
        try:
            for manager in (slow, quick):
                manager.send("int", make_sip(), dest)
                _, reason = await inbox.error()
                assert reason.startswith("tls connect failed")
            slow.send("int", make_sip(), dest)
            assert slow.stats.connections == 0
            _, reason = await inbox.error()
            assert "backoff" in reason
            assert slow.stats.dropped == 2

            await asyncio.sleep(0.05)
            quick.send("int", make_sip(), dest)
            assert quick.stats.connections == 1
            _, reason = await inbox.error()
            assert reason.startswith("tls connect failed")
        finally:
            sock.close()
            await slow.close()
            await quick.close()

    run(scenario())


def test_backoff_doubles_up_to_its_cap_and_success_resets_it() -> None:
    backoff = ConnectBackoff(BackoffPolicy(initial=1.0, maximum=5.0))
    peer, other = Peer(TLS, "192.0.2.1", 5061), Peer(TLS, "192.0.2.2", 5061)
    assert backoff.wait(peer, 100.0) == 0.0
    assert [backoff.failed(peer, 100.0) for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff.wait(peer, 102.0) == 3.0
    assert backoff.wait(peer, 105.0) == 0.0
    assert backoff.wait(other, 100.0) == 0.0
    backoff.succeeded(peer)
    assert backoff.failed(peer, 200.0) == 1.0
    # TCP is not held back unless the policy says so.
    tcp = Peer("tcp", "192.0.2.1", 5060)
    assert backoff.failed(tcp, 100.0) == 0.0
    assert backoff.wait(tcp, 100.0) == 0.0
    with pytest.raises(ValueError, match="initial"):
        BackoffPolicy(initial=0.0)


# -- limits at accept -------------------------------------------------------------

ATTACKER = "127.0.0.66"


async def raw_from(source: str, address: tuple[str, int]) -> Streams:
    """A plain TCP connection to the TLS port from ``source``; no handshake started."""
    return await asyncio.wait_for(asyncio.open_connection(*address, local_addr=(source, 0)), WAIT)


async def closed_silently(reader: asyncio.StreamReader) -> bool:
    """The listener closed without sending a byte (no ServerHello); a hang fails."""
    try:
        return await asyncio.wait_for(reader.read(), WAIT) == b""
    except ConnectionResetError:
        return True


def test_a_refused_source_is_closed_before_any_tls_handshake(
    run: Run, inbox: Any, make_sip: Callable[..., bytes], pki: Pki
) -> None:
    async def scenario() -> None:
        def screen(host: str, _interface: str) -> Screening:
            return Screening.REFUSE if host == ATTACKER else Screening.STRANGER

        config = TlsServerConfig(pki.sbc.cert, pki.sbc.key)
        manager = await tls_manager(inbox, config, screen=screen)
        address = manager.bound("ext", "tls")
        try:
            reader, writer = await raw_from(ATTACKER, address)
            assert await closed_silently(reader)
            writer.close()
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await asyncio.wait_for(
                    asyncio.open_connection(
                        *address,
                        ssl=client_context(pki),
                        server_hostname="127.0.0.1",
                        local_addr=(ATTACKER, 0),
                    ),
                    WAIT,
                )
            _, good = await tls_connect(address, client_context(pki))
            good.write(make_sip())
            assert (await inbox.message()).data == make_sip()
            good.close()
            stats = manager.stats
            assert (stats.refused_screened, stats.tls_handshake_failures) == (2, 0)
        finally:
            await manager.close()

    run(scenario())


def test_tls_handshakes_in_progress_are_capped_per_source(
    run: Run, inbox: Any, make_sip: Callable[..., bytes], pki: Pki
) -> None:
    async def scenario() -> None:
        config = TlsServerConfig(pki.sbc.cert, pki.sbc.key)
        limits = TransportLimits(max_tls_handshakes_per_source=2)
        manager = await tls_manager(inbox, config, limits=limits)
        address = manager.bound("ext", "tls")
        pending = [await raw_from(ATTACKER, address) for _ in range(2)]
        try:
            third, writer = await raw_from(ATTACKER, address)
            assert await closed_silently(third)
            writer.close()
            assert manager.stats.refused_handshakes == 1
            _, good = await tls_connect(address, client_context(pki))  # another source
            good.write(make_sip())
            assert (await inbox.message()).data == make_sip()
            good.close()
            for _, stalled in pending:  # their handshakes fail: the source may try again
                stalled.close()
            await eventually(lambda: manager.stats.tls_handshake_failures == 2)
            _, again = await asyncio.wait_for(
                asyncio.open_connection(
                    *address,
                    ssl=client_context(pki),
                    server_hostname="127.0.0.1",
                    local_addr=(ATTACKER, 0),
                ),
                WAIT,
            )
            again.write(make_sip())
            assert (await inbox.message()).source.host == ATTACKER
            again.close()
        finally:
            await manager.close()

    run(scenario())


def test_a_stalled_tls_handshake_is_closed_at_its_deadline(run: Run, inbox: Any, pki: Pki) -> None:
    async def scenario() -> None:
        config = TlsServerConfig(pki.sbc.cert, pki.sbc.key)
        limits = TransportLimits(tls_handshake_timeout=0.3)
        manager = await tls_manager(inbox, config, limits=limits)
        try:
            reader, writer = await raw_from(ATTACKER, manager.bound("ext", "tls"))
            assert await closed_silently(reader)
            writer.close()
            await eventually(lambda: manager.stats.tls_handshake_failures == 1)
        finally:
            await manager.close()

    run(scenario())


# -- idle sweep, configuration --------------------------------------------------


def test_idle_tls_connections_are_closed(
    run: Run, inbox: Any, make_sip: Callable[..., bytes], pki: Pki
) -> None:
    async def scenario() -> None:
        config = TlsServerConfig(pki.sbc.cert, pki.sbc.key)
        manager = await tls_manager(inbox, config, tcp_idle_timeout=0.2)
        reader, writer = await tls_connect(manager.bound("ext", "tls"), client_context(pki))
        try:
            writer.write(make_sip())
            await inbox.message()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                assert await asyncio.wait_for(reader.read(), WAIT) == b""
            await eventually(lambda: manager.stats.connections == 0)
        finally:
            writer.close()
            await manager.close()

    run(scenario())


def test_tls_listens_beside_udp_and_tcp_on_its_own_port(
    run: Run, inbox: Any, make_sip: Callable[..., bytes], pki: Pki
) -> None:
    async def scenario() -> None:
        manager = TransportManager(inbox.on_message)
        config = TlsServerConfig(pki.sbc.cert, pki.sbc.key)
        try:
            with pytest.raises(ValueError, match="tls_port"):
                await manager.listen("ext", "127.0.0.1", 0, ["udp", "tls"], tls=config)
            with pytest.raises(ValueError, match="tls"):
                await manager.listen("ext", "127.0.0.1", 0, ["tcp"], tls=config)
            await manager.listen(
                "ext", "127.0.0.1", 0, ["udp", "tcp", "tls"], tls=config, tls_port=0
            )
            assert manager.bound("ext", "udp") == manager.bound("ext", "tcp")
            assert manager.bound("ext", "tls")[1] not in {0, manager.bound("ext", "tcp")[1]}
            _, writer = await tls_connect(manager.bound("ext", "tls"), client_context(pki))
            writer.write(make_sip())
            assert (await inbox.message()).local == manager.bound("ext", "tls")
            writer.close()
        finally:
            await manager.close()

    run(scenario())


def test_bad_tls_files_or_a_busy_port_leave_nothing_bound(
    run: Run, inbox: Any, pki: Pki, tmp_path: Path
) -> None:
    async def scenario() -> None:
        manager = TransportManager(inbox.on_message)
        wrong_key = TlsServerConfig(pki.sbc.cert, pki.client.key)
        missing = TlsServerConfig(str(tmp_path / "none.pem"), str(tmp_path / "none.key"))
        busy = socket.create_server(("127.0.0.1", 0))
        try:
            for config in (wrong_key, missing):
                with pytest.raises(TlsConfigError) as caught:
                    await manager.listen(
                        "ext", "127.0.0.1", 0, ["tcp", "tls"], tls=config, tls_port=0
                    )
                assert "BEGIN" not in str(caught.value)
            good = TlsServerConfig(pki.sbc.cert, pki.sbc.key)
            with pytest.raises(OSError, match="in use"):
                await manager.listen(
                    "ext",
                    "127.0.0.1",
                    0,
                    ["udp", "tcp", "tls"],
                    tls=good,
                    tls_port=busy.getsockname()[1],
                )
            # The interface's UDP and TCP were undone: it can listen afresh.
            await manager.listen("ext", "127.0.0.1", 0, ["udp", "tcp"])
            with pytest.raises(TlsConfigError, match="CA bundle"):
                manager.set_tls_clients({("127.0.0.1", 5061): TlsClientConfig(str(tmp_path))})
        finally:
            busy.close()
            await manager.close()

    run(scenario())


def test_config_validation() -> None:
    with pytest.raises(TlsConfigError, match="cafile"):
        TlsServerConfig("c.pem", "k.pem", require_client_cert=True)
    with pytest.raises(TlsConfigError, match="cafile"):
        TlsServerConfig("c.pem", "k.pem", pinned_client_fingerprints=("a" * 64,))
    with pytest.raises(TlsConfigError, match="fingerprint"):
        TlsClientConfig(pinned_fingerprints=("abc",))
    with pytest.raises(TlsConfigError, match="certfile"):
        TlsClientConfig(keyfile="k.pem")
    upper = ":".join(["AB"] * 32)
    assert normalize_fingerprint(f"sha256:{upper}") == "ab" * 32
    assert TlsClientConfig(pinned_fingerprints=(upper,)).pinned_fingerprints == ("ab" * 32,)


def test_certificate_names_cover_hosts() -> None:
    names = certificate_names(
        {"subjectAltName": (("DNS", "*.trunk.example"), ("IP Address", "2001:DB8:0:0::1"))}
    )
    assert names_host(names, "2001:db8::1")
    assert names_host(names, "a.trunk.example")
    assert not names_host(names, "a.b.trunk.example")
    assert not names_host(names, "trunk.example")
    assert not names_host(certificate_names({}), "127.0.0.1")


# -- the dev certificate helper -------------------------------------------------


def test_make_cert_names_and_usages() -> None:
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    ca = tlsdev.make_ca("CA", days=30, now=now)
    cert_pem, _ = tlsdev.make_cert(ca, "sbc", ["127.0.0.1", "sbc.example"], now=now, days=1)
    cert = x509.load_pem_x509_certificate(cert_pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["sbc.example"]
    assert cert.not_valid_after_utc == now + datetime.timedelta(days=1)
    assert cert.not_valid_before_utc < now
    client_pem, _ = tlsdev.make_cert(ca, "c", ["127.0.0.1"], client=True, now=now)
    usage = x509.load_pem_x509_certificate(client_pem).extensions.get_extension_for_class(
        x509.ExtendedKeyUsage
    )
    assert list(usage.value) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(ValueError, match="validity"):
        tlsdev.make_ca("CA", days=366)
    with pytest.raises(ValueError, match="subjectAltName"):
        tlsdev.make_cert(ca, "x", [])


def test_tlsdev_cli_writes_a_demo_pki_and_keeps_it(tmp_path: Path) -> None:
    assert tlsdev.main([str(tmp_path)]) == 0
    written = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert {"ca.pem", "ca.key", "sbc-external.pem", "sbc-internal.key", "pbx.pem"} <= set(written)
    assert (tmp_path / "ca.key").stat().st_mode & 0o077 == 0
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    context.load_cert_chain(tmp_path / "sbc-external.pem", tmp_path / "sbc-external.key")
    assert tlsdev.main([str(tmp_path)]) == 0
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == written
    assert tlsdev.main([str(tmp_path), "--force"]) == 0
    assert (tmp_path / "ca.pem").read_bytes() != written["ca.pem"]
