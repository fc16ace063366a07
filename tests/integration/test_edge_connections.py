"""Connection exhaustion and oversized messages, against the running SBC.

An attacker on its own loopback address (127.0.0.66) tries what one host can
do to the transports (docs/security.md, "Connections and message sizes"):

- hold many TCP connections, idle or with a message half sent, while the
  carrier calls over TCP: the SBC closes the connections over the attacker's
  cap at once and the ones it held at the message deadline, and the call
  completes;
- connect over TCP and TLS from a banned or ACL-denied address: closed before
  any TLS handshake (no handshake is counted, the refusal is);
- hold every connection slot strangers may have: the SBC's own outbound trunk
  connection still opens, in the reserve, and the PBX's call reaches the
  carrier over it;
- send a 20 KB datagram: dropped unanswered and counted, while a 10 KB one is
  answered.

Connection counts stay in the hundreds (the process limit is 20,000 files),
every wait is bounded, and exact outcomes are read from the SBC's counters
(``/metrics``) rather than from timing.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import SippPair
from harness import (
    CARRIER_IP,
    PBX_IP,
    SbcProcess,
    Sipp,
    TlsListener,
    TrunkDef,
    options_request,
    run_pair,
    running_sbc,
    sip_status,
    udp_exchange,
)
from tls_ua import open_tls

from sbc import tlsdev

pytestmark = pytest.mark.integration

TOKEN = "edge-connections-admin-token-0123456789"
ATTACKER_IP = "127.0.0.66"
STRANGER_IP = "127.0.0.67"
DENIED_IP = "127.0.0.77"  # refused by the external interface's ACL
SCANNER_IP = "127.0.0.78"  # banned for its User-Agent
CARRIER_TCP_IP = "127.0.0.11"  # a carrier reached over TCP only

#: A request cut before the end of its header section: it can never complete.
HALF_SENT = (
    b"INVITE sip:4930100@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.66:5060;branch=z9hG4bK-half\r\n"
    b"From: <sip:a@127.0.0.66>;tag=1\r\n"
)
WAIT_S = 15.0


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def metrics(sbc: SbcProcess) -> dict[str, float]:
    """Every sample of the SBC's ``/metrics``, keyed by its line's name and labels."""
    response = httpx.get(
        f"{sbc.admin_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5.0
    )
    response.raise_for_status()
    samples: dict[str, float] = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def refused(sbc: SbcProcess, reason: str) -> float:
    return metrics(sbc).get(f'sbc_transport_connections_refused_total{{reason="{reason}"}}', 0.0)


def eventually(condition: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def connect_many(source: str, dest: tuple[str, int], count: int) -> list[socket.socket]:
    """``count`` TCP connections from ``source`` (the kernel completes each handshake)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(dest, timeout=5.0, source_address=(source, 0))
            socks.append(sock)
    except BaseException:
        close_all(socks)
        raise
    return socks


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.close()


def closed_by_sbc(sock: socket.socket) -> bool:
    """Whether the SBC has closed ``sock`` (EOF or reset); never blocks."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(65536, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset: an abort
        return True


def count_closed(socks: list[socket.socket]) -> int:
    return sum(closed_by_sbc(sock) for sock in socks)


def send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # a connection the SBC already closed
        sock.sendall(data)


# --------------------------------------------------------------------------
# 1. one source holding idle and half-sent connections
# --------------------------------------------------------------------------

ATTACK = 200  # connections the attacker opens
CAP = 20  # transport.max_connections_per_source for this SBC
DEADLINE_S = 4  # transport.message_timeout_s for this SBC


def test_one_source_cannot_hold_the_pool_and_half_sent_messages_expire(
    tmp_path: Path, sipp_pair: SippPair
) -> None:
    settings = (
        "calls: {shutdown_grace_s: 2}\n"
        f"transport: {{max_connections_per_source: {CAP}, message_timeout_s: {DEADLINE_S}}}\n"
    )
    with running_sbc(
        tmp_path / "sbc", transport="tcp", admin_token=TOKEN, extra_sbc_yaml=settings
    ) as sbc:
        attack = connect_many(ATTACKER_IP, sbc.ext, ATTACK)
        try:
            for index, sock in enumerate(attack):  # half of them start a message
                if index % 2:
                    send_quietly(sock, HALF_SENT)
            # The connections over the cap are closed at once, the cap's worth held.
            assert eventually(lambda: refused(sbc, "per_source") == ATTACK - CAP), metrics(sbc)

            # Meanwhile the carrier calls over TCP, and another stranger connects.
            uas, uac = sipp_pair(sbc, "uas_basic", "uac_basic")
            assert uac.ok, uac.describe() + uas.describe()
            assert uas.ok, uas.describe()
            assert len(uas.requests("INVITE", "received")) == 1, uas.describe()
            with socket.create_connection(
                sbc.ext, timeout=5.0, source_address=(STRANGER_IP, 0)
            ) as stranger:
                port = stranger.getsockname()[1]
                stranger.sendall(options_request(sbc.ext_uri, STRANGER_IP, port, transport="TCP"))
                assert sip_status(stranger.recv(65536)) is not None

            # The held ones, idle or half sent, are closed at the message deadline.
            assert eventually(lambda: count_closed(attack) == ATTACK), count_closed(attack)
            samples = metrics(sbc)
            assert samples["sbc_transport_message_timeouts_total"] == CAP, samples
            assert refused(sbc, "per_source") == ATTACK - CAP
        finally:
            close_all(attack)
        assert sbc.alive(), sbc.stderr_tail()


# --------------------------------------------------------------------------
# 2. banned and ACL-denied sources, over TCP and TLS
# --------------------------------------------------------------------------


def scanner_request(dest: tuple[str, int], port: int) -> bytes:
    text = options_request(f"{dest[0]}:{dest[1]}", SCANNER_IP, port).decode()
    return text.replace("Accept:", "User-Agent: friendly-scanner\r\nAccept:", 1).encode()


def tls_client_context(ca: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca)
    return context


@pytest.fixture
def pki(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(CA, SBC certificate, SBC key) for the external interface 127.0.0.1."""
    ca = tlsdev.make_ca("edge test CA")
    cert, key = tlsdev.make_cert(ca, "sbc", ["127.0.0.1"])
    paths = (tmp_path / "ca.pem", tmp_path / "sbc.pem", tmp_path / "sbc.key")
    for path, data in zip(paths, (ca[0], cert, key), strict=True):
        path.write_bytes(data)
    paths[2].chmod(0o600)
    return paths


def test_refused_sources_are_closed_before_any_tls_handshake(
    tmp_path: Path, pki: tuple[Path, Path, Path]
) -> None:
    ca, cert, key = pki
    security = f"acl:\n  external:\n    deny: [{DENIED_IP}/32]\n"
    with running_sbc(
        tmp_path / "sbc",
        admin_token=TOKEN,
        tls={"external": TlsListener(cert, key)},
        extra_files={"security.yaml": security},
    ) as sbc:
        # The scanner is banned on sight over UDP.
        since = sbc.log_offset()
        udp_exchange(SCANNER_IP, sbc.ext, scanner_request(sbc.ext, 5060), timeout=0.5)
        assert sbc.wait_log_event({"guard.banned"}, since, source=SCANNER_IP), sbc.log_events()

        for source in (DENIED_IP, SCANNER_IP):
            # Plain TCP: closed at accept; a request sent anyway is never answered.
            with socket.create_connection(sbc.ext, timeout=5.0, source_address=(source, 0)) as s:
                send_quietly(s, options_request(sbc.ext_uri, source, 5060, transport="TCP"))
                assert eventually(lambda s=s: closed_by_sbc(s), 5.0), source
            # TLS: the client's hello gets no answer at all, the connection is closed.
            with pytest.raises((ssl.SSLError, ConnectionError)):
                open_tls(sbc.tls_address("external"), tls_client_context(ca), local_ip=source)

        # The carrier's TLS connection is served as ever.
        stream = open_tls(sbc.tls_address("external"), tls_client_context(ca), local_ip=CARRIER_IP)
        try:
            target = "{}:{}".format(*sbc.tls_address("external"))
            stream.send(
                options_request(target, CARRIER_IP, stream.local[1], transport="TLS").decode()
            )
            answer = stream.receive()
            assert answer is not None
            assert answer.status == 200, answer
        finally:
            stream.close()

        samples = metrics(sbc)
        assert refused(sbc, "screened") == 4, samples  # two sources, TCP and TLS each
        assert samples["sbc_tls_handshake_failures_total"] == 0, samples
        handshakes = [e for e in sbc.log_events() if e.get("event") == "tls_handshake_failed"]
        assert handshakes == []


# --------------------------------------------------------------------------
# 3. the reserve: an outbound trunk connection while strangers hold the rest
# --------------------------------------------------------------------------

POOL = 40  # transport.max_connections for this SBC
RESERVE = 5  # transport.reserved_outbound_connections


def test_outbound_trunk_connection_opens_while_strangers_hold_every_other_slot(
    tmp_path: Path,
) -> None:
    settings = (
        "calls: {shutdown_grace_s: 2}\n"
        f"transport: {{max_connections: {POOL}, reserved_outbound_connections: {RESERVE},"
        " message_timeout_s: 60}\n"
    )
    routes = (
        "routes:\n"
        "  - {name: to-tcp-carrier, from_trunk: pbx, prefix: '8', to: [carrier-tcp]}\n"
        "  - {name: carrier-to-pbx, from_trunk: carrier, to: [pbx]}\n"
        "  - {name: pbx-to-carrier, from_trunk: pbx, to: [carrier]}\n"
    )
    trunk = TrunkDef("carrier-tcp", "external", CARRIER_TCP_IP, transport="tcp")
    with running_sbc(
        tmp_path / "sbc",
        admin_token=TOKEN,
        extra_sbc_yaml=settings,
        routes_yaml=routes,
        extra_trunks=[trunk],
    ) as sbc:
        attack = connect_many(ATTACKER_IP, sbc.ext, POOL)  # every slot, if it could
        try:
            assert eventually(lambda: refused(sbc, "pool_full") == RESERVE), metrics(sbc)
            ip, port = sbc.trunk("carrier-tcp")
            carrier = Sipp(
                "uas_basic",
                local_ip=ip,
                local_port=port,
                transport="tcp",
                duration_ms=200,
                timeout_s=20,
                workdir=tmp_path,
                name="carrier-tcp",
            )
            pbx = Sipp(
                "uac_basic",
                local_ip=PBX_IP,
                remote=sbc.int_uri,
                service="8001",
                duration_ms=300,
                timeout_s=20,
                workdir=tmp_path,
                name="pbx",
            )
            callee, caller = run_pair(carrier, pbx)
            assert caller.ok, caller.describe() + callee.describe()
            assert callee.ok, callee.describe()
            assert len(callee.requests("INVITE", "received")) == 1, callee.describe()
            assert count_closed(attack) == RESERVE  # the strangers' slots stay theirs
        finally:
            close_all(attack)


# --------------------------------------------------------------------------
# 4. datagram size
# --------------------------------------------------------------------------


def padded_options(dest: tuple[str, int], port: int, size: int) -> bytes:
    """An OPTIONS from the carrier of exactly ``size`` bytes (a text body pads it)."""
    head = options_request(f"{dest[0]}:{dest[1]}", CARRIER_IP, port).decode()
    head = head.replace("Content-Length: 0\r\n\r\n", "Content-Type: text/plain\r\n")

    def build(body: int) -> bytes:
        return f"{head}Content-Length: {body}\r\n\r\n{'x' * body}".encode()

    body = size - len(build(0))
    body -= len(build(body)) - size  # Content-Length itself took more digits
    message = build(body)
    assert len(message) == size
    return message


@pytest.fixture
def udp_sbc(tmp_path: Path) -> Iterator[SbcProcess]:
    with running_sbc(tmp_path / "sbc", admin_token=TOKEN) as sbc:
        yield sbc


def test_an_oversized_datagram_is_dropped_unanswered(udp_sbc: SbcProcess) -> None:
    sbc = udp_sbc  # the Via names no port that matters: rport answers the source
    big = udp_exchange(CARRIER_IP, sbc.ext, padded_options(sbc.ext, 5060, 20 * 1024))
    fits = udp_exchange(CARRIER_IP, sbc.ext, padded_options(sbc.ext, 5060, 10 * 1024))
    assert [sip_status(r) for r in fits][:1] == [200], fits
    assert big == []
    assert metrics(sbc)["sbc_transport_oversized_datagrams_total"] == 1
