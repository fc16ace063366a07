"""The sans-IO DTLS-SRTP endpoint (RFC 5764): two of ours in memory, and aiortc's."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiortc.rtcdtlstransport import (
    RTCCertificate,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCDtlsTransport,
)

from sbc.media.dtls import DtlsEndpoint
from sbc.media.dtls_certificate import DtlsCertificate, DtlsState
from sbc.media.srtp import SrtpContext

RTP = bytes.fromhex("8000000100000064deadbeef") + b"\x55" * 160
WAIT = 10.0


@pytest.fixture(scope="module")
def certificates() -> tuple[DtlsCertificate, DtlsCertificate]:
    return DtlsCertificate.generate(), DtlsCertificate.generate()


def _pair(
    certificates: tuple[DtlsCertificate, DtlsCertificate],
    client_expects: str | None = None,
) -> tuple[DtlsEndpoint, DtlsEndpoint]:
    server_cert, client_cert = certificates
    server = DtlsEndpoint(server_cert, "server", (("sha-256", client_cert.fingerprint()),))
    expected = client_expects or server_cert.fingerprint()
    client = DtlsEndpoint(client_cert, "client", (("sha-256", expected),))
    return server, client


def _exchange(a: DtlsEndpoint, b: DtlsEndpoint, now: float, rounds: int = 10) -> None:
    """Move every pending datagram across until both are quiet (bounded)."""
    for _ in range(rounds):
        moved = False
        for src, dst in ((a, b), (b, a)):
            for datagram in src.datagrams_to_send():
                dst.receive_datagram(datagram, now)
                moved = True
        if not moved:
            return


def test_handshake_in_memory_gives_matching_srtp_keys(certificates) -> None:
    server, client = _pair(certificates)
    client.start(0.0)
    server.start(0.0)
    assert client.get_timer() is not None  # the ClientHello awaits an answer
    _exchange(client, server, 0.0)
    assert (client.state, server.state) == (DtlsState.CONNECTED, DtlsState.CONNECTED)
    assert client.keys is not None
    assert server.keys is not None
    assert client.keys.send_key == server.keys.receive_key
    assert client.keys.receive_key == server.keys.send_key
    assert client.keys.send_key != client.keys.receive_key
    protected = SrtpContext(client.keys).outbound.protect(RTP)
    assert protected != RTP
    assert SrtpContext(server.keys).inbound.unprotect(protected) == RTP
    back = SrtpContext(server.keys).outbound.protect(RTP)
    assert SrtpContext(client.keys).inbound.unprotect(back) == RTP


def test_fingerprint_mismatch_fails_without_keys(certificates) -> None:
    server, client = _pair(certificates, client_expects="AB:" * 31 + "AB")
    client.start(0.0)
    _exchange(client, server, 0.0)
    assert client.state is DtlsState.FAILED
    assert client.keys is None
    assert client.failure is not None
    assert "fingerprint" in client.failure


def test_unknown_hash_function_only_is_a_mismatch(certificates) -> None:
    server_cert, client_cert = certificates
    client = DtlsEndpoint(client_cert, "client", (("md5", "00:11"),))
    server = DtlsEndpoint(server_cert, "server", (("sha-256", client_cert.fingerprint()),))
    client.start(0.0)
    _exchange(client, server, 0.0)
    assert client.state is DtlsState.FAILED


def test_lost_flight_is_retransmitted_on_the_timer(certificates) -> None:
    server, client = _pair(certificates)
    client.start(0.0)
    assert len(client.datagrams_to_send()) == 1  # the ClientHello is lost
    deadline = client.get_timer()
    assert deadline is not None
    assert deadline > 0.0
    client.handle_timer(deadline / 2)  # not due yet on our clock: nothing resent
    assert client.datagrams_to_send() == []
    resent: list[bytes] = []
    # OpenSSL keeps its own clock: ours follows real time here (bounded wait).
    start = time.monotonic()
    now = deadline
    while not resent and now < deadline + WAIT:
        due = client.get_timer()
        assert due is not None
        if now >= due:
            client.handle_timer(now)
            resent = client.datagrams_to_send()
        time.sleep(0.05)
        now = deadline + time.monotonic() - start
    assert len(resent) == 1
    for datagram in resent:
        server.receive_datagram(datagram, now)
    _exchange(client, server, now)
    assert client.state is DtlsState.CONNECTED
    assert server.state is DtlsState.CONNECTED


def test_certificate_repr_hides_the_key(certificates) -> None:
    certificate = certificates[0]
    assert b"PRIVATE KEY" in certificate.private_key
    assert "PRIVATE" not in repr(certificate)
    assert certificate.fingerprint() in repr(certificate)


class _MemoryIce:
    """Stands for aiortc's ICE transport: datagrams to and from our endpoint."""

    role = "controlled"

    def __init__(self, ours: DtlsEndpoint) -> None:
        self.ours = ours
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.state = "completed"

    async def _send(self, data: bytes) -> None:
        self.ours.receive_datagram(data, 0.0)
        for datagram in self.ours.datagrams_to_send():
            self.inbox.put_nowait(datagram)

    async def _recv(self) -> bytes:
        return await self.inbox.get()

    def _connection_lost(self) -> None:  # pragma: no cover - aiortc's callback
        pass


def test_handshake_against_aiortc_dtls_transport(certificates) -> None:
    """aiortc's RTCDtlsTransport as the client, ours the server: same SRTP keys."""
    asyncio.run(asyncio.wait_for(_against_aiortc(certificates[0]), 30))


async def _against_aiortc(certificate: DtlsCertificate) -> None:
    theirs = RTCCertificate.generateCertificate()
    fingerprints = tuple(
        (f.algorithm, f.value) for f in theirs.getFingerprints() if f.algorithm == "sha-256"
    )
    ours = DtlsEndpoint(certificate, "server", fingerprints)
    ice = _MemoryIce(ours)
    transport = RTCDtlsTransport(ice, [theirs])  # type: ignore[arg-type]
    transport._set_role("client")
    params = RTCDtlsParameters(
        fingerprints=[RTCDtlsFingerprint("sha-256", certificate.fingerprint())],
        role="server",
    )
    await asyncio.wait_for(transport.start(params), WAIT)
    assert transport.state == "connected"
    assert ours.state is DtlsState.CONNECTED
    assert ours.keys is not None
    packet = transport._tx_srtp.protect(RTP)
    assert SrtpContext(ours.keys).inbound.unprotect(packet) == RTP
    await transport.stop()
