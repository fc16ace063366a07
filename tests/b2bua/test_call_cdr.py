"""Call events and the CDR each call leaves: what an operator reads afterwards."""

from __future__ import annotations

from peers import Net, sdp

from sbc.b2bua.call import Call
from sbc.b2bua.cdr import record_of
from sbc.cdr import CdrRecord, Disposition, HangupBy


def recording(net: Net) -> list[tuple[str, CdrRecord]]:
    seen: list[tuple[str, CdrRecord]] = []

    def on_event(event: str, call: Call) -> None:
        seen.append((event, record_of(call, lambda t: 1_000_000.0 + t)))

    net.core.on_call_event = on_event
    return seen


def test_answered_call_record(net: Net) -> None:
    seen = recording(net)
    a = net.carrier.invite("+12125550123")
    invite = net.pbx.take_request("INVITE")
    net.advance(1)
    net.pbx.respond(invite, 180)
    net.advance(2)
    net.pbx.respond(invite, 200, body=sdp(net.pbx.host))
    net.carrier.ack(a)
    net.advance(30)
    net.carrier.request(a, "BYE")
    net.pbx.respond(net.pbx.take_request("BYE"), 200)
    assert [event for event, _ in seen] == ["started", "ringing", "answered", "ended"]
    record = seen[-1][1]
    assert record.a_call_id == a.call_id
    assert record.b_call_id == invite.call_id
    assert record.a_remote_tag == a.local_tag
    assert record.b_local_tag == invite.from_.tag
    assert (record.ingress_trunk, record.egress_trunk) == ("carrier", "pbx")
    assert (record.ingress_interface, record.egress_interface) == ("external", "internal")
    assert record.called == "2125550123"  # after the demo's inbound E.164 rule
    assert record.calling == "carrier"
    assert record.start == 1_000_000.0
    assert record.ring == 1_000_001.0
    assert record.answer == 1_000_003.0
    assert record.end == 1_000_033.0
    assert record.duration_s == 30.0
    assert record.final_status == 200
    assert record.disposition is Disposition.ANSWERED
    assert record.hangup_by is HangupBy.CALLER
    assert record.codecs == "PCMU/8000,PCMA/8000,telephone-event/8000"
    assert net.core.counters.completions["answered"] == 1
    assert net.core.counters.finals[("pbx", 200)] == 1
    assert sum(net.core.counters.setup_time.counts) == 1
    assert net.core.counters.setup_time.total == 3.0


def test_busy_call_record(net: Net) -> None:
    seen = recording(net)
    net.pbx.invite("2125550100")
    invite = net.carrier.take_request("INVITE")
    net.carrier.respond(invite, 486)
    record = seen[-1][1]
    assert seen[-1][0] == "ended"
    assert record.called == "+12125550100"  # the demo's outbound E.164 rule
    assert record.disposition is Disposition.BUSY
    assert record.hangup_by is HangupBy.CALLEE
    assert record.answer is None
