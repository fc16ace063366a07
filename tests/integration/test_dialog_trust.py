"""In-dialog trust and reflection against the running SBC (issue 11).

- An attacker on 127.0.0.66 who has read a call's PBX-side Call-ID and tags
  (here: from the SIPp PBX's own message log) sends a BYE in that dialog to
  the SBC's internal interface: it is refused, the call survives, and both
  SIPp ends finish normally (the caller hangs up as planned).
- A request naming a dialog the SBC does not have is answered exactly once:
  no 100 Trying, no Timer G retransmissions of the 481 (T1 = 0.5 s: a
  stateful answer would be re-sent at 0.5, 1.5 and 3.5 s within the 5 s the
  attacker's socket listens).
"""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import pytest
from harness import CARRIER_IP, PBX_IP, SbcProcess, SipMessage, Sipp, sip_status

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ATTACKER_IP = "127.0.0.66"
CALL_MS = 4000  # the caller holds the call this long before its BYE


def _pbx_dialog(pbx: Sipp, deadline_s: float = 10.0) -> tuple[SipMessage, SipMessage]:
    """The INVITE the PBX received and the 200 it sent, once both are in its log."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        messages = pbx.result().messages
        invites = [m for m in messages if m.method == "INVITE" and m.direction == "received"]
        oks = [m for m in messages if m.status == 200 and m.direction == "sent"]
        if invites and oks:
            return invites[0], oks[0]
        time.sleep(0.1)
    raise AssertionError(f"the PBX never answered: {pbx.result().describe()}")


def _forged_bye(invite: SipMessage, ok: SipMessage, port: int, sbc: tuple[str, int]) -> bytes:
    """A BYE from the PBX's side of the dialog: its tag in From, the SBC's in To."""
    our_side = ok.header("To")  # the PBX's address with its tag
    their_side = invite.header("From")  # the SBC's B-leg address with its tag
    assert our_side is not None
    assert their_side is not None
    assert ok.to_tag
    assert invite.from_tag
    return (
        f"BYE sip:{sbc[0]}:{sbc[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {ATTACKER_IP}:{port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: {our_side}\r\n"
        f"To: {their_side}\r\n"
        f"Call-ID: {invite.call_id}\r\n"
        "CSeq: 7 BYE\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _listen(sock: socket.socket, seconds: float) -> list[bytes]:
    """Every datagram ``sock`` receives for ``seconds`` (bounded)."""
    received: list[bytes] = []
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            received.append(sock.recv(65535))
        except (TimeoutError, ConnectionRefusedError):
            break
    return received


def test_a_forged_bye_from_a_third_address_does_not_end_the_call(
    sbc: SbcProcess, tmp_path: Path
) -> None:
    pbx = Sipp(
        "uas_basic",
        local_ip=PBX_IP,
        local_port=sbc.ports.pbx,
        duration_ms=200,
        timeout_s=30,
        workdir=tmp_path,
    )
    carrier = Sipp(
        "uac_basic",
        local_ip=CARRIER_IP,
        remote=sbc.ext_uri,
        duration_ms=CALL_MS,
        timeout_s=30,
        workdir=tmp_path,
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
        attacker.bind((ATTACKER_IP, 0))
        pbx.start()
        try:
            carrier.start(wait_bind=False)
            invite, ok = _pbx_dialog(pbx)
            attacker.sendto(_forged_bye(invite, ok, attacker.getsockname()[1], sbc.int_), sbc.int_)
            answers = _listen(attacker, 1.0)
            carrier_result = carrier.wait()
            pbx_result = pbx.wait()
        finally:
            carrier.stop()
            pbx.stop()
    assert [sip_status(a) for a in answers] == [403]
    assert carrier_result.ok, carrier_result.describe() + pbx_result.describe()
    assert pbx_result.ok, pbx_result.describe() + carrier_result.describe()
    # The call ended as the caller meant: its own BYE, relayed once to the PBX;
    # the SBC sent the caller no BYE of its own.
    assert not carrier_result.requests("BYE", "received")
    assert carrier_result.statuses("BYE") == [200]
    byes = pbx_result.requests("BYE", "received")
    assert len(byes) == 1
    assert byes[0].call_id == invite.call_id


def test_an_unknown_dialog_is_answered_exactly_once(sbc: SbcProcess) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
        attacker.bind((ATTACKER_IP, 0))
        port = attacker.getsockname()[1]
        host, sbc_port = sbc.ext
        invite = (
            f"INVITE sip:1000@{host}:{sbc_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {ATTACKER_IP}:{port};branch=z9hG4bK{uuid.uuid4().hex[:12]}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:x@{ATTACKER_IP}>;tag=a1\r\n"
            f"To: <sip:1000@{host}>;tag=no-such-dialog\r\n"
            f"Call-ID: {uuid.uuid4().hex}@{ATTACKER_IP}\r\n"
            "CSeq: 1 INVITE\r\n"
            f"Contact: <sip:x@{ATTACKER_IP}:{port}>\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        attacker.sendto(invite, sbc.ext)
        received = _listen(attacker, 5.0)
    assert [sip_status(d) for d in received] == [481]
    assert len(received[0]) <= len(invite)
