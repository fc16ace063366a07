"""Hostile header fields through the core: line-break injection and numbers.

A bare CR inside a value is a line break to PJSIP-based peers, so whatever
carries one is refused where it arrives (400 for a request, a response is
dropped) and never reaches the other leg. Numbers that ``str.isdigit`` takes
but ``int`` refuses (``²``, 5,000 digits) get an answer, never an exception.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from peers import CARRIER_HOST, PBX_HOST, Net, policy_copy, sdp

from sbc.policy import load_policy
from sbc.sip.message import Request, Response

INJECTED = b"X-Injected"


def invite_bytes(net: Net, extra: bytes = b"") -> bytes:
    """The carrier's INVITE as it would send it (not sent), ``extra`` header lines added."""
    dlg = net.carrier.invite(send=False)
    assert dlg.invite is not None
    return dlg.invite.serialize().replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\n" + extra)


def sent_to(net: Net, host: str) -> list[bytes]:
    return [data for target, data in net.log if target.host == host]


def assert_refused_400(net: Net, data: bytes, problem: bytes) -> None:
    """``data`` from the carrier gets a 400 naming ``problem`` (after a 100 Trying
    when the parser let it through); the PBX gets nothing."""
    out = net.deliver_from(net.carrier.source, data)
    assert [t.target.host for t in out] == [CARRIER_HOST] * len(out)
    status_lines = [t.data.split(b"\r\n", 1)[0] for t in out]
    assert status_lines[:-1] in ([], [b"SIP/2.0 100 Trying"])
    assert status_lines[-1] == b"SIP/2.0 400 Bad Request (" + problem + b")"
    assert out[-1].data.count(b"\r") == out[-1].data.count(b"\r\n")  # no bare CR back
    assert sent_to(net, PBX_HOST) == []
    assert net.core.calls == {}
    net.settle()
    assert len(net.core.layer) == 0


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (b"Max-Forwards: 70", b"Subject: hi\rX-Injected: 1", b"bare CR in header Subject"),
        (
            b"Max-Forwards: 70",
            b'Reason: SIP;cause=480;text="gone\rX-Injected: 1"',
            b"bare CR in header Reason",
        ),
        (
            b"From: <sip:carrier@",
            b'From: "Carrier\rX-Injected: 1" <sip:carrier@',
            b"bare CR in header From",
        ),
        (
            b"Max-Forwards: 70",
            b'P-Asserted-Identity: "Boss\rX-Injected: 1" <sip:1000@127.0.0.10>',
            b"bare CR in header P-Asserted-Identity",
        ),
        (b"Max-Forwards: 70", b"Subject: hi\x00X-Injected: 1", b"NUL in header Subject"),
        (b"INVITE sip:1000@", b"INVITE sip:1000\r@", b"bare CR in the Request-Line"),
    ],
)
def test_control_octet_in_an_invite_is_a_400_and_nothing_reaches_the_callee(
    net: Net, old: bytes, new: bytes, problem: bytes
) -> None:
    data = invite_bytes(net)
    assert old in data
    assert_refused_400(net, data.replace(old, new, 1), problem)


def callee_response(
    net: Net, invite: Request, status: int, reason: bytes, body: bytes = b""
) -> bytes:
    """The PBX's answer to ``invite``, with ``reason`` as its reason phrase."""
    response = net.pbx.respond(invite, status, body=body, send=False)
    _, rest = response.serialize().split(b"\r\n", 1)
    return b"SIP/2.0 %d " % status + reason + b"\r\n" + rest


def test_bare_cr_in_a_reason_phrase_from_the_callee_is_never_relayed(net: Net) -> None:
    caller, callee = net.carrier, net.pbx
    a = caller.invite()
    invite = callee.take_request("INVITE")
    caller.clear()
    ringing = callee_response(net, invite, 180, b"Ringing\rX-Injected: 1")
    net.deliver_from(callee.source, ringing)
    answer = callee_response(net, invite, 200, b"OK\rX-Injected: 1", sdp(callee.host))
    net.deliver_from(callee.source, answer)
    assert caller.inbox == []
    assert not any(INJECTED in data for data in sent_to(net, CARRIER_HOST))
    assert net.core.stats["parse_errors"] == 2
    # The call itself is intact: the callee's clean retransmission goes through.
    net.deliver_from(callee.source, answer.replace(b"OK\rX-Injected: 1", b"OK"))
    ok = caller.take_response(200, "INVITE")
    assert isinstance(ok, Response)
    assert ok.reason == "OK"
    caller.ack(a)
    assert callee.take_request("ACK")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"Session-Expires: \xc2\xb2", b"invalid Session-Expires '\xc2\xb2'"),
        (b"x: \xc2\xb2;refresher=uac", b"invalid Session-Expires '\xc2\xb2;refresher=uac'"),
        (b"Expires: " + b"9" * 5000, b"invalid Expires '99999999999999999999'"),
        (b"Expires: \xc2\xb2", b"invalid Expires '\xc2\xb2'"),
    ],
)
def test_unreadable_number_in_an_invite_gets_a_400_and_no_transaction(
    net: Net, line: bytes, problem: bytes
) -> None:
    assert_refused_400(net, invite_bytes(net, line + b"\r\n"), problem)


def test_5000_digit_session_expires_is_read_as_the_largest_delta(net: Net) -> None:
    """RFC 4028 Session-Expires is delta-seconds: grammatical however long,
    so it is clamped to 2**32-1 (RFC 3261 §20.19's range), never converted."""
    caller, callee = net.carrier, net.pbx
    a = caller.invite(headers=[("Session-Expires", "9" * 5000), ("Supported", "timer")])
    invite = callee.take_request("INVITE")
    callee.respond(invite, 200, body=sdp(callee.host))
    ok = caller.take_response(200, "INVITE")
    assert ok.headers.get("Session-Expires") == "4294967295;refresher=uac"
    caller.ack(a)
    caller.request(a, "BYE")
    callee.respond(callee.take_request("BYE"), 200)
    assert caller.take_response(200, "BYE")
    net.settle()
    assert net.core.calls == {}
    assert len(net.core.layer) == 0


@pytest.mark.parametrize("value", ["\u00b2", "9" * 5000])
def test_unreadable_session_expires_in_the_callees_answer_is_ignored(net: Net, value: str) -> None:
    caller, callee = net.carrier, net.pbx
    a = caller.invite()
    invite = callee.take_request("INVITE")
    callee.respond(invite, 200, body=sdp(callee.host), headers=[("Session-Expires", value)])
    assert caller.take_response(200, "INVITE")
    caller.ack(a)
    assert callee.take_request("ACK")
    assert net.core.stats["call_errors"] == 0
    assert len(net.core.calls) == 1


@pytest.mark.parametrize("rseq", ["\u00b2", "9" * 5000, "0"])
def test_reliable_provisional_with_an_unreadable_rseq_is_not_pracked(net: Net, rseq: str) -> None:
    """RFC 3262 §7.1: RSeq is 1*DIGIT in 1..2**31-1; no PRACK echoes anything else."""
    caller, callee = net.carrier, net.pbx
    caller.invite()
    invite = callee.take_request("INVITE")
    callee.respond(invite, 183, headers=[("Require", "100rel"), ("RSeq", rseq)])
    assert callee.requests("PRACK") == []
    assert net.core.stats["call_errors"] == 0
    callee.respond(invite, 183, headers=[("Require", "100rel"), ("RSeq", "0012")])
    (prack,) = callee.requests("PRACK")
    assert prack.headers.get("RAck") == "12 1 INVITE"


def with_filler(data: bytes, count: int) -> bytes:
    return data.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\n" + b"X-F: 1\r\n" * count)


def test_header_bomb_is_dropped_unparsed_per_the_policy_limit(net: Net, tmp_path: Path) -> None:
    """sbc.yaml ``sip.max_headers``: over it, nothing is parsed, so nothing is
    answered (no amplification) and nothing crosses; it counts as a parse error."""
    data = invite_bytes(net)
    assert net.deliver_from(net.carrier.source, with_filler(data, 4000)) == []
    assert net.core.stats["parse_errors"] == 1
    directory = policy_copy(tmp_path)
    (directory / "sbc.yaml").write_text("sip:\n  max_headers: 40\n")
    net.core.set_policy(load_policy(directory), net.now)
    assert net.deliver_from(net.carrier.source, with_filler(data, 40)) == []
    assert net.core.stats["parse_errors"] == 2
    assert sent_to(net, PBX_HOST) == []
    net.deliver_from(net.carrier.source, with_filler(data, 20))
    assert len(net.pbx.requests("INVITE")) == 1  # under the limit: a call as usual


@pytest.mark.parametrize("value", [b"0", b"00"])
def test_max_forwards_zero_in_any_spelling_is_483(net: Net, value: bytes) -> None:
    data = invite_bytes(net).replace(b"Max-Forwards: 70", b"Max-Forwards: " + value)
    out = net.deliver_from(net.carrier.source, data)
    assert out[-1].data.startswith(b"SIP/2.0 483 ")
    assert sent_to(net, PBX_HOST) == []
