"""Call flows through the SBC with SIPp on both sides (real sockets, loopback).

Caller "carrier" = SIPp on 127.0.0.10 → SBC external 127.0.0.1; callee "pbx" =
SIPp on 127.0.0.20, reached from the SBC's internal 127.0.0.2 (and the reverse
for ``direction="outbound"``). Besides both SIPp exit codes, every flow checks
from the message logs what each far end actually received: the B2BUA builds
the other leg fresh and nothing of one side's topology reaches the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SippPair
from harness import (
    CARRIER_IP,
    PBX_IP,
    SBC_EXT_IP,
    SBC_INT_IP,
    STRANGER_IP,
    SbcProcess,
    SipMessage,
    Sipp,
    SippResult,
    leaks,
    options_ping,
)

pytestmark = pytest.mark.integration

# --------------------------------------------------------------------------
# assertions
# --------------------------------------------------------------------------


def _first(msgs: list[SipMessage], what: str) -> SipMessage:
    assert msgs, f"no {what} in the message log"
    return msgs[0]


def assert_both_ok(uas: SippResult, uac: SippResult) -> None:
    assert uac.ok, uac.describe() + uas.describe()
    assert uas.ok, uas.describe() + uac.describe()


def assert_topology_hidden(
    uas: SippResult,
    uac: SippResult,
    *,
    caller_ip: str = CARRIER_IP,
    callee_ip: str = PBX_IP,
    allow_callee_contact_leak: bool = False,
    part: str = "headers",
) -> None:
    """The callee's INVITE is a fresh B-leg; no address or id crosses sides.

    ``part="headers"`` checks signalling only; the SDP (media anchoring) is
    checked by the dedicated ``*_sdp_*`` tests with ``part="all"``, so that a
    missing media anchor shows up as its own failure.
    """
    a_inv = _first(uac.requests("INVITE", "sent"), "INVITE sent by the caller")
    b_inv = _first(uas.requests("INVITE", "received"), "INVITE received by the callee")
    assert b_inv.call_id
    assert b_inv.call_id != a_inv.call_id, "Call-ID copied to the B-leg"
    assert b_inv.from_tag
    assert b_inv.from_tag != a_inv.from_tag, "From tag copied"
    assert b_inv.via_branch
    assert b_inv.via_branch != a_inv.via_branch, "Via branch copied"
    assert len(b_inv.header_all("Via")) == 1, "A-leg Via headers reached the callee"
    assert b_inv.via_host
    assert b_inv.via_host != a_inv.via_host, "Via sent-by copied"
    assert b_inv.contact_uri
    assert b_inv.contact_uri != a_inv.contact_uri, "Contact copied"
    assert not b_inv.header_all("Record-Route"), "the SBC is a B2BUA, it must not Record-Route"

    # Nothing the callee received names the caller, its Call-ID or its tag.
    assert a_inv.call_id
    a_ids = [caller_ip, a_inv.call_id]
    if a_inv.from_tag:
        a_ids.append(a_inv.from_tag)
    leaked = leaks(uas.received, a_ids, part)
    assert not leaked, "A-leg topology leaked to the callee:\n" + "\n".join(leaked)

    # Nothing the caller received names the callee, its Call-ID or its tag.
    b_ids = [callee_ip, b_inv.call_id]
    b_tags = {m.to_tag for m in uas.sent if not m.is_request and m.to_tag}
    b_ids += sorted(b_tags)
    received = uac.received
    if allow_callee_contact_leak:
        received = [m for m in received if m.status != 302]
    leaked = leaks(received, b_ids, part)
    assert not leaked, "B-leg topology leaked to the caller:\n" + "\n".join(leaked)

    # Responses that reached the caller carry its own dialog identifiers.
    a_branches = {m.via_branch for m in uac.sent if m.is_request}
    for resp in uac.responses("INVITE", "received"):
        assert resp.call_id == a_inv.call_id
        assert resp.from_tag == a_inv.from_tag
        assert resp.via_branch in a_branches
        assert len(resp.header_all("Via")) == 1


def received_methods(res: SippResult) -> list[str]:
    return [m.method for m in res.received if m.method]


# --------------------------------------------------------------------------
# basic calls
# --------------------------------------------------------------------------


def test_basic_call_inbound(sbc: SbcProcess, sipp_pair: SippPair) -> None:
    uas, uac = sipp_pair(sbc, "uas_basic", "uac_basic")
    assert_both_ok(uas, uac)
    assert_topology_hidden(uas, uac)
    b_inv = uas.requests("INVITE", "received")[0]
    assert b_inv.via_host is not None
    assert b_inv.via_host.split(":")[0] == SBC_INT_IP, "B-leg must leave the internal interface"
    assert 180 in uac.statuses("INVITE")
    assert 183 in uac.statuses("INVITE")
    assert uac.statuses("BYE") == [200]
    assert "BYE" in received_methods(uas)


def _sdp_connection(msg: SipMessage) -> str | None:
    for line in msg.body.splitlines():
        if line.startswith("c="):
            return line.strip()
    return None


@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_basic_call_sdp_anchored(sbc: SbcProcess, sipp_pair: SippPair, direction: str) -> None:
    """Media is anchored: each side sees only the SBC's media address of its side."""
    uas, uac = sipp_pair(sbc, "uas_basic", "uac_basic", direction=direction)
    assert_both_ok(uas, uac)
    inbound = direction == "inbound"
    caller_ip, callee_ip = (CARRIER_IP, PBX_IP) if inbound else (PBX_IP, CARRIER_IP)
    caller_side, callee_side = (SBC_EXT_IP, SBC_INT_IP) if inbound else (SBC_INT_IP, SBC_EXT_IP)
    assert_topology_hidden(uas, uac, caller_ip=caller_ip, callee_ip=callee_ip, part="all")
    b_inv = uas.requests("INVITE", "received")[0]
    assert _sdp_connection(b_inv) == f"c=IN IP4 {callee_side}", b_inv.body
    for resp in uac.responses("INVITE", "received"):
        if resp.status in (183, 200):
            assert _sdp_connection(resp) == f"c=IN IP4 {caller_side}", resp.body


def test_basic_call_outbound(sbc: SbcProcess, sipp_pair: SippPair) -> None:
    """PBX (127.0.0.20) calls out through the internal interface to the carrier."""
    uas, uac = sipp_pair(sbc, "uas_basic", "uac_basic", direction="outbound")
    assert_both_ok(uas, uac)
    assert_topology_hidden(uas, uac, caller_ip=PBX_IP, callee_ip=CARRIER_IP)
    b_inv = uas.requests("INVITE", "received")[0]
    assert b_inv.via_host is not None
    assert b_inv.via_host.split(":")[0] == SBC_EXT_IP


def test_callee_hangs_up(sbc: SbcProcess, sipp_pair: SippPair) -> None:
    uas, uac = sipp_pair(sbc, "uas_callee_bye", "uac_callee_bye")
    assert_both_ok(uas, uac)
    assert_topology_hidden(uas, uac)
    bye = _first(uac.requests("BYE", "received"), "BYE at the caller")
    a_inv = uac.requests("INVITE", "sent")[0]
    assert bye.call_id == a_inv.call_id
    assert bye.to_tag == a_inv.from_tag
    assert uas.statuses("BYE") == [200]


def test_basic_call_tcp(sbc_tcp: SbcProcess, sipp_pair: SippPair) -> None:
    uas, uac = sipp_pair(sbc_tcp, "uas_basic", "uac_basic")
    assert_both_ok(uas, uac)
    assert_topology_hidden(uas, uac)
    assert {m.transport for m in uas.messages} == {"TCP"}


def test_basic_call_tcp_outbound(sbc_tcp: SbcProcess, sipp_pair: SippPair) -> None:
    uas, uac = sipp_pair(sbc_tcp, "uas_basic", "uac_basic", direction="outbound")
    assert_both_ok(uas, uac)
    assert_topology_hidden(uas, uac, caller_ip=PBX_IP, callee_ip=CARRIER_IP)


# --------------------------------------------------------------------------
# CANCEL and failures
# --------------------------------------------------------------------------


def test_cancel(sbc: SbcProcess, sipp_pair: SippPair) -> None:
    uas, uac = sipp_pair(sbc, "uas_cancel", "uac_cancel")
    assert_both_ok(uas, uac)
    assert_topology_hidden(uas, uac)
    assert uac.statuses("CANCEL") == [200]
    assert 487 in uac.statuses("INVITE")
    b_cancel = _first(uas.requests("CANCEL", "received"), "CANCEL at the callee")
    b_inv = uas.requests("INVITE", "received")[0]
    assert b_cancel.via_branch == b_inv.via_branch, "CANCEL must match the B-leg INVITE"
    assert b_cancel.call_id == b_inv.call_id
    assert uas.requests("ACK", "received"), "the SBC must ACK the callee's 487"


@pytest.mark.parametrize(
    "status",
    [
        "486 Busy Here",
        "503 Service Unavailable",
        "404 Not Found",
        "302 Moved Temporarily",
        "603 Decline",
    ],
)
def test_failure_passes_back(sbc: SbcProcess, sipp_pair: SippPair, status: str) -> None:
    code = int(status[:3])
    uas, uac = sipp_pair(
        sbc,
        "uas_failure",
        "uac_failure",
        uas_kw={"keys": {"status_line": f"SIP/2.0 {status}"}},
    )
    assert_both_ok(uas, uac)
    finals = [s for s in uac.statuses("INVITE") if s >= 200]
    assert finals[-1:] == [code], f"caller got {finals}, callee sent {code}"
    assert uas.requests("ACK", "received"), "the SBC must ACK the callee's failure"
    # a 302 Contact is the redirect target itself: leave its handling to the SBC
    assert_topology_hidden(uas, uac, allow_callee_contact_leak=code == 302)
    if code == 302:
        final = [m for m in uac.received if m.status == 302][-1]
        assert final.header("Contact"), "302 without a Contact"


@pytest.fixture(scope="module")
def sbc_fast_timers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    """T1 = 100 ms, so Timer B (64*T1) fires after 6.4 s instead of 32 s."""
    sbc = SbcProcess(tmp_path_factory.mktemp("sbc-fast"), t1_ms=100)
    try:
        sbc.start()
    except RuntimeError as exc:
        pytest.fail(f"SBC did not start: {exc}", pytrace=False)
    yield sbc
    sbc.stop()


def test_callee_unreachable(sbc_fast_timers: SbcProcess, tmp_path: Path) -> None:
    """Nothing listens at the PBX: the caller gets a final error in bounded time."""
    caller = Sipp(
        "uac_failure",
        local_ip=CARRIER_IP,
        remote=sbc_fast_timers.ext_uri,
        timeout_s=40,
        duration_ms=100,
        workdir=tmp_path,
    )
    res = caller.start(wait_bind=False).wait()
    assert res.ok, res.describe()
    finals = [s for s in res.statuses("INVITE") if s >= 200]
    assert finals, res.describe()
    assert finals[-1] in {408, 480, 500, 502, 503, 504}, finals


def test_unknown_source_gets_403(sbc: SbcProcess, tmp_path: Path) -> None:
    caller = Sipp(
        "uac_failure",
        local_ip=STRANGER_IP,
        remote=sbc.ext_uri,
        timeout_s=15,
        duration_ms=100,
        workdir=tmp_path,
    )
    res = caller.start(wait_bind=False).wait()
    assert res.ok, res.describe()
    assert [s for s in res.statuses("INVITE") if s >= 200] == [403]
    # and the OPTIONS probe from a stranger is refused too (statelessly)
    assert options_ping(STRANGER_IP, sbc.ext, timeout=1.0) == 403


# --------------------------------------------------------------------------
# offer/answer and in-dialog requests
# --------------------------------------------------------------------------


def test_late_offer(sbc: SbcProcess, sipp_pair: SippPair) -> None:
    uas, uac = sipp_pair(sbc, "uas_late_offer", "uac_late_offer")
    assert_both_ok(uas, uac)
    assert_topology_hidden(uas, uac)
    b_inv = uas.requests("INVITE", "received")[0]
    assert not b_inv.body.strip(), "a late-offer INVITE must reach the callee without SDP"
    a_ok = next(m for m in uac.responses("INVITE", "received") if m.status == 200)
    assert "m=audio" in a_ok.body, "the 200 must carry the offer"
    b_ack = _first(uas.requests("ACK", "received"), "ACK at the callee")
    assert "m=audio" in b_ack.body, "the ACK must carry the answer"


def test_late_offer_sdp_anchored(sbc: SbcProcess, sipp_pair: SippPair) -> None:
    uas, uac = sipp_pair(sbc, "uas_late_offer", "uac_late_offer")
    assert_both_ok(uas, uac)
    assert_topology_hidden(uas, uac, part="all")


def test_reinvite_hold_resume(sbc: SbcProcess, sipp_pair: SippPair) -> None:
    uas, uac = sipp_pair(sbc, "uas_reinvite_hold", "uac_reinvite_hold")
    assert_both_ok(uas, uac)
    assert_topology_hidden(uas, uac)
    b_invites = uas.requests("INVITE", "received")
    assert len(b_invites) == 3
    b_call_id = b_invites[0].call_id
    assert all(m.call_id == b_call_id for m in b_invites), "re-INVITEs must stay in the B dialog"
    assert "a=sendonly" in b_invites[1].body, "hold not signalled to the callee"
    assert "a=sendonly" not in b_invites[2].body, "resume not signalled to the callee"
    assert len(uas.requests("ACK", "received")) == 3
    assert [s for s in uac.statuses("INVITE") if s >= 200] == [200, 200, 200]


def test_reinvite_sdp_anchored(sbc: SbcProcess, sipp_pair: SippPair) -> None:
    uas, uac = sipp_pair(sbc, "uas_reinvite_hold", "uac_reinvite_hold")
    assert_both_ok(uas, uac)
    assert_topology_hidden(uas, uac, part="all")
    # Hold and resume keep the anchored ports on both legs (RFC 3264 §8).
    callee_ports = {_audio_port(m) for m in uas.requests("INVITE", "received")}
    caller_ports = {
        _audio_port(m)
        for m in uac.responses("INVITE", "received")
        if m.status == 200 and "m=audio" in m.body
    }
    assert len(callee_ports) == 1, callee_ports
    assert len(caller_ports) == 1, caller_ports


def _audio_port(msg: SipMessage) -> str:
    for line in msg.body.splitlines():
        if line.startswith("m=audio "):
            return line.split()[1]
    raise AssertionError(f"no m=audio in {msg.start_line}")


def test_update_info_options_in_dialog(sbc: SbcProcess, sipp_pair: SippPair) -> None:
    uas, uac = sipp_pair(sbc, "uas_in_dialog", "uac_in_dialog")
    assert_both_ok(uas, uac)
    assert_topology_hidden(uas, uac)
    got = received_methods(uas)
    assert "UPDATE" in got
    assert "INFO" in got
    info = uas.requests("INFO", "received")[0]
    assert "Signal=5" in info.body, "INFO body must pass through"
    for method in ("UPDATE", "INFO", "OPTIONS", "BYE"):
        assert uac.statuses(method) == [200], (method, uac.statuses(method))


def test_refer_and_notify(sbc: SbcProcess, sipp_pair: SippPair) -> None:
    uas, uac = sipp_pair(sbc, "uas_refer", "uac_refer")
    assert_both_ok(uas, uac)
    assert_topology_hidden(uas, uac)
    assert uac.statuses("REFER") == [202]
    notify = _first(uac.requests("NOTIFY", "received"), "NOTIFY at the caller")
    assert notify.header("Event") is not None
    assert "SIP/2.0 200" in notify.body
    assert uas.statuses("NOTIFY") == [200]


def test_prack_reliable_provisional(sbc: SbcProcess, sipp_pair: SippPair) -> None:
    uas, uac = sipp_pair(sbc, "uas_prack", "uac_prack")
    assert_both_ok(uas, uac)
    assert_topology_hidden(uas, uac)
    ringing = [m for m in uac.received if m.status == 180]
    assert ringing, "no 180 at the caller"
    assert ringing[0].header("RSeq"), "reliable 180 lost its RSeq"
    assert "100rel" in (ringing[0].header("Require") or "")
    assert uas.requests("PRACK", "received"), "the callee never got a PRACK"
    assert uac.statuses("PRACK") == [200]


# --------------------------------------------------------------------------
# OPTIONS to the SBC itself
# --------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["external", "internal"])
def test_options_to_sbc(sbc: SbcProcess, tmp_path: Path, side: str) -> None:
    src, target = (CARRIER_IP, sbc.ext_uri) if side == "external" else (PBX_IP, sbc.int_uri)
    pinger = Sipp("uac_options", local_ip=src, remote=target, timeout_s=10, workdir=tmp_path)
    res = pinger.start(wait_bind=False).wait()
    assert res.ok, res.describe()
    assert res.statuses("OPTIONS") == [200]


def test_options_max_forwards_zero(sbc: SbcProcess) -> None:
    """Max-Forwards: 0 OPTIONS (a keep-alive probe) is answered by the SBC itself."""
    assert options_ping(CARRIER_IP, sbc.ext, timeout=2.0, max_forwards=0) == 200


# --------------------------------------------------------------------------
# loss
# --------------------------------------------------------------------------


def test_lossy_calls_all_complete(sbc: SbcProcess, sipp_pair: SippPair) -> None:
    """-lost 10 on both SIPp sides: retransmissions on both legs save every call."""
    uas, uac = sipp_pair(
        sbc,
        "uas_basic",
        "uac_basic",
        calls=20,
        rate=10,
        timeout_s=90,
        uas_kw={"lost": 10, "duration_ms": 4000},
        uac_kw={"lost": 10, "limit": 20},
    )
    assert_both_ok(uas, uac)
    assert uac.counter("Successful call") == 20, uac.describe()
    assert uas.counter("Successful call") == 20, uas.describe()
