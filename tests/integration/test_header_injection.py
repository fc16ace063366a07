"""Header injection by a lone CR, tried against the running SBC (issue 11).

PJSIP-based peers (Asterisk) read a bare CR as a line break, so a header
hidden behind one inside an allowed value, a display name or a reason phrase
would cross the SBC's allow-list. A raw UDP socket on the carrier's address
sends such INVITEs: each gets a 400 naming the problem, and the SIPp PBX
behind the SBC (its message log) receives nothing of them. Then a SIPp PBX
answers with a bare CR in its reason phrases: the SIPp caller never sees
those responses, only the clean 200 the PBX sends after them.
"""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import pytest
from conftest import SippPair
from harness import CARRIER_IP, PBX_IP, SbcProcess, Sipp, free_port, sip_status

pytestmark = pytest.mark.integration

INJECTED = "X-Injected"
BAD_KEYS = {"bad_ringing": "Ringing\rX-Injected: 1", "bad_ok": "OK\rX-Injected: 1"}


def invite(
    sbc: SbcProcess,
    port: int,
    call_id: str,
    *,
    ruri_user: str = "1000",
    display: str = '"Carrier"',
    extra: str = "",
) -> bytes:
    """An INVITE from the raw carrier socket at CARRIER_IP:``port``; ``extra`` header lines."""
    host, sbc_port = sbc.ext
    body = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.10\r\ns=-\r\nc=IN IP4 127.0.0.10\r\nt=0 0\r\n"
        "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
    head = (
        f"INVITE sip:{ruri_user}@{host}:{sbc_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {CARRIER_IP}:{port};branch=z9hG4bK-{call_id};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: {display} <sip:carrier@{CARRIER_IP}>;tag=t-{call_id}\r\n"
        f"To: <sip:1000@{host}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:carrier@{CARRIER_IP}:{port}>\r\n"
        f"{extra}"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return (head + body).encode("latin-1")


#: name -> (what the attacker changes, the reason phrase of the 400)
ATTACKS: dict[str, tuple[dict[str, str], str]] = {
    "allowed header": ({"extra": "Subject: hi\rX-Injected: 1\r\n"}, "bare CR in header Subject"),
    "reason header": (
        {"extra": 'Reason: SIP;cause=480;text="gone\rX-Injected: 1"\r\n'},
        "bare CR in header Reason",
    ),
    "display name": ({"display": '"Carrier\rX-Injected: 1"'}, "bare CR in header From"),
    "re-hosted identity": (
        {"extra": f'P-Asserted-Identity: "Boss\rX-Injected: 1" <sip:1@{CARRIER_IP}>\r\n'},
        "bare CR in header P-Asserted-Identity",
    ),
    "NUL": ({"extra": "Subject: hi\x00X-Injected: 1\r\n"}, "NUL in header Subject"),
    "Request-URI": ({"ruri_user": "1000\rX-Injected:"}, "bare CR in the Request-Line"),
}


def collect(sock: socket.socket, *, until_final: bool, limit_s: float = 5.0) -> list[bytes]:
    """Datagrams received until a final response (or ``limit_s``), then 0.3 s of quiet."""
    replies: list[bytes] = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, min(0.3, deadline - time.monotonic())))
        try:
            replies.append(sock.recv(65535))
        except TimeoutError:
            if not until_final or any((sip_status(r) or 0) >= 200 for r in replies):
                break
    return replies


def ack_for(sbc: SbcProcess, port: int, call_id: str, final: bytes) -> bytes:
    """The ACK of a non-2xx final response to :func:`invite` (RFC 3261 §17.1.1.3)."""
    to = next(line for line in final.split(b"\r\n") if line.startswith(b"To:"))
    host, sbc_port = sbc.ext
    head = (
        f"ACK sip:1000@{host}:{sbc_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {CARRIER_IP}:{port};branch=z9hG4bK-{call_id};rport\r\n"
        "Max-Forwards: 70\r\n"
        f'From: "Carrier" <sip:carrier@{CARRIER_IP}>;tag=t-{call_id}\r\n'
    )
    tail = f"\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    return head.encode() + to + tail.encode()


def test_sipp_key_puts_a_bare_cr_on_the_wire(tmp_path: Path) -> None:
    """Harness check: SIPp strips a CR written in a scenario, but a ``-key``
    value goes out byte for byte, so the PBX below really sends one."""
    port = free_port(PBX_IP)
    pbx = Sipp(
        "uas_cr_reason",
        local_ip=PBX_IP,
        local_port=port,
        keys=BAD_KEYS,
        timeout_s=10,
        workdir=tmp_path,
    ).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((CARRIER_IP, 0))
            own = sock.getsockname()[1]
            request = (
                f"INVITE sip:x@{PBX_IP}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {CARRIER_IP}:{own};branch=z9hG4bK-probe\r\n"
                f"From: <sip:a@{CARRIER_IP}>;tag=1\r\nTo: <sip:x@{PBX_IP}>\r\n"
                "Call-ID: probe\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
            sock.sendto(request.encode(), (PBX_IP, port))
            replies = collect(sock, until_final=True)
    finally:
        pbx.stop()
    lines = [reply.split(b"\n", 1)[0] for reply in replies]
    assert b"SIP/2.0 180 Ringing\rX-Injected: 1\r" in lines, lines
    assert b"SIP/2.0 200 OK\rX-Injected: 1\r" in lines, lines


def test_cr_laden_invites_get_400_and_nothing_injected_reaches_the_pbx(
    sbc: SbcProcess, tmp_path: Path
) -> None:
    pbx = Sipp(
        "uas_failure",
        local_ip=PBX_IP,
        local_port=sbc.ports.pbx,
        keys={"status_line": "SIP/2.0 486 Busy Here"},
        timeout_s=20,
        workdir=tmp_path,
    ).start()
    refusals: dict[str, list[bytes]] = {}
    clean_id = f"clean-{uuid.uuid4().hex[:8]}"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((CARRIER_IP, 0))
            port = sock.getsockname()[1]
            for name, (change, _) in ATTACKS.items():
                call_id = f"attack-{uuid.uuid4().hex[:8]}"
                sock.sendto(invite(sbc, port, call_id, **change), sbc.ext)
                refusals[name] = collect(sock, until_final=True)
            # Then a clean call, so the PBX's log is known to be live.
            sock.sendto(invite(sbc, port, clean_id), sbc.ext)
            replies = collect(sock, until_final=True)
            final = next(r for r in replies if (sip_status(r) or 0) >= 200)
            sock.sendto(ack_for(sbc, port, clean_id, final), sbc.ext)
        result = pbx.wait()
    finally:
        pbx.stop()
    for name, (_, problem) in ATTACKS.items():
        lines = [reply.split(b"\r\n", 1)[0] for reply in refusals[name]]
        assert lines == [f"SIP/2.0 400 Bad Request ({problem})".encode()], (name, lines)
    assert sip_status(final) == 486
    assert result.ok, result.describe()
    assert len(result.requests("INVITE", "received")) == 1  # the clean call's (new Call-ID)
    log = (result.workdir / "messages.log").read_bytes()  # raw: read_text() would turn CR to LF
    assert INJECTED.encode() not in log
    assert b"\x00" not in log


def test_callee_reason_phrase_with_a_bare_cr_never_reaches_the_caller(
    sbc: SbcProcess, sipp_pair: SippPair
) -> None:
    callee, caller = sipp_pair(sbc, "uas_cr_reason", "uac_basic", uas_kw={"keys": BAD_KEYS})
    assert callee.ok, callee.describe()
    assert caller.ok, caller.describe()
    sent = (callee.workdir / "messages.log").read_bytes()  # raw: read_text() turns CR to LF
    assert b"SIP/2.0 180 Ringing\rX-Injected: 1\r\n" in sent, "the PBX did send it"
    assert b"SIP/2.0 200 OK\rX-Injected: 1\r\n" in sent
    assert 180 not in caller.statuses("INVITE")
    answers = [m for m in caller.responses("INVITE", "received") if m.status == 200]
    assert answers
    assert {m.start_line for m in answers} == {"SIP/2.0 200 OK"}
    assert not any(INJECTED in m.raw for m in caller.received)
    assert INJECTED.encode() not in (caller.workdir / "messages.log").read_bytes()
