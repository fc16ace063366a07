"""Self-tests of the SIPp harness, without the SBC: SIPp talks to SIPp directly.

These must pass on any machine with SIPp; they prove the scenarios, the
runner and the message-log parser before anything is blamed on the SBC.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import (
    CARRIER_IP,
    PBX_IP,
    Sipp,
    SippResult,
    free_port,
    parse_message_log,
    run_pair,
)

pytestmark = pytest.mark.integration

LOG = (
    "----------------------------------------------- 2026-01-01 10:00:00.000001\n"
    "UDP message sent (120 bytes):\n"
    "\n"
    "INVITE sip:service@127.0.0.20:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.10:5061;branch=z9hG4bK-1-1-0\r\n"
    "f: <sip:a@127.0.0.10>;tag=abc\r\n"
    "To: <sip:service@127.0.0.20>\r\n"
    "Call-ID: 1-1@127.0.0.10\r\n"
    "CSeq: 1 INVITE\r\n"
    "Subject: folded\r\n"
    " continuation\r\n"
    "Content-Length: 3\r\n"
    "\r\n"
    "v=0\n"
    "\n"
    "----------------------------------------------- 2026-01-01 10:00:00.000002\n"
    "UDP message received [80] bytes :\n"
    "\n"
    "SIP/2.0 180 Ringing\r\n"
    "Via: SIP/2.0/UDP 127.0.0.10:5061;branch=z9hG4bK-1-1-0\r\n"
    "From: <sip:a@127.0.0.10>;tag=abc\r\n"
    "To: <sip:service@127.0.0.20>;tag=xyz\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:127.0.0.20:5060;transport=UDP>\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
    "\n"
    "----------------------------------------------- 2026-01-01 10:00:00.000003\n"
    "TCP message received [10] bytes :\n"
    "\n"
    "SIP/2.0 200 OK\r\n"
    "CSeq: 1 INVITE\r\n"
    "\r\n"
)


def test_parse_message_log() -> None:
    msgs = parse_message_log(LOG)
    assert [m.direction for m in msgs] == ["sent", "received", "received"]
    assert [m.transport for m in msgs] == ["UDP", "UDP", "TCP"]
    inv, ringing, ok = msgs
    assert inv.method == "INVITE"
    assert inv.request_uri == "sip:service@127.0.0.20:5060"
    assert inv.from_tag == "abc"  # compact form "f:"
    assert inv.to_tag is None
    assert inv.via_branch == "z9hG4bK-1-1-0"
    assert inv.via_host == "127.0.0.10:5061"
    assert inv.header("subject") == "folded continuation"
    assert inv.body == "v=0"
    assert ringing.status == 180
    assert ringing.to_tag == "xyz"
    assert ringing.cseq_method == "INVITE"
    assert ringing.contact_uri == "sip:127.0.0.20:5060;transport=UDP"
    assert ok.status == 200


def _direct(
    tmp_path: Path,
    uas: str,
    uac: str,
    *,
    transport: str = "udp",
    calls: int = 1,
    uas_linger_ms: int = 100,
    **kw: object,
) -> tuple[SippResult, SippResult]:
    keys = kw.pop("keys", None)
    callee = Sipp(
        uas,
        local_ip=PBX_IP,
        local_port=free_port(PBX_IP),
        transport=transport,
        calls=calls,
        duration_ms=uas_linger_ms,
        timeout_s=30,
        workdir=tmp_path,
        keys=keys,  # type: ignore[arg-type]
    )
    caller = Sipp(
        uac,
        local_ip=CARRIER_IP,
        remote=callee.address,
        transport=transport,
        calls=calls,
        duration_ms=100,
        timeout_s=30,
        workdir=tmp_path,
        keys=keys,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    return run_pair(callee, caller)


PAIRS = [
    "basic",
    "callee_bye",
    "cancel",
    "late_offer",
    "reinvite_hold",
    "in_dialog",
    "refer",
    "prack",
]


@pytest.mark.parametrize("flow", PAIRS)
def test_scenario_pair_direct(tmp_path: Path, flow: str) -> None:
    uas, uac = _direct(tmp_path, f"uas_{flow}", f"uac_{flow}")
    assert uac.ok, uac.describe()
    assert uas.ok, uas.describe()
    # the log parser saw both sides of the dialogue, in matching numbers
    assert uac.requests("INVITE", "sent")
    assert uas.requests("INVITE", "received")
    assert len(uac.sent) == len(uas.received)
    assert len(uas.sent) == len(uac.received)


@pytest.mark.parametrize("status", ["486 Busy Here", "302 Moved Temporarily", "603 Decline"])
def test_failure_pair_direct(tmp_path: Path, status: str) -> None:
    uas, uac = _direct(
        tmp_path, "uas_failure", "uac_failure", keys={"status_line": f"SIP/2.0 {status}"}
    )
    assert uac.ok, uac.describe()
    assert uas.ok, uas.describe()
    assert uac.statuses("INVITE")[-1] == int(status[:3])
    assert uas.requests("ACK", "received")


def test_basic_direct_tcp(tmp_path: Path) -> None:
    uas, uac = _direct(tmp_path, "uas_basic", "uac_basic", transport="tcp")
    assert uac.ok, uac.describe()
    assert uas.ok, uas.describe()
    assert {m.transport for m in uac.messages} == {"TCP"}


def test_lossy_direct(tmp_path: Path) -> None:
    """-lost 10 on the caller: SIPp's own retransmissions recover every call.

    The callee lingers 4 s after its 200 for BYE, so that a BYE retransmitted
    after a lost 200 is still answered (a finished SIPp call ignores it).
    """
    uas, uac = _direct(
        tmp_path, "uas_basic", "uac_basic", calls=10, rate=10, lost=10, uas_linger_ms=4000
    )
    assert uac.ok, uac.describe()
    assert uas.ok, uas.describe()
