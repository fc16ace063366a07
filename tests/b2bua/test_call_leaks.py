"""The leak guard in the core: what a misconfigured policy or a chatty peer
would carry across is caught on the way out, whatever carries it.

Each case is run in every ``topology.leak_guard`` mode. ``off`` shows the
leak is real (the far end receives the internal address without the guard);
``auto`` and ``scrub`` deliver the message with this side's own address in
its place; ``block`` delivers nothing and the call or transaction still
ends cleanly; ``log`` delivers it as it was, counted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from peers import (
    CARRIER_HOST,
    EXTERNAL_HOST,
    INTERNAL_HOST,
    PBX_HOST,
    Dlg,
    FakeUA,
    Net,
    NoRelay,
    established,
    policy_copy,
    sdp,
)

from sbc.media.anchor import MediaAnchor
from sbc.media.ports import PortPool
from sbc.policy import load_policy
from sbc.sip.message import Message, Request, parse_message

MODES = ["off", "auto", "scrub", "block", "log"]
#: What must never reach the carrier: the PBX and the SBC's internal face.
INTERNAL = (PBX_HOST, INTERNAL_HOST)


def make_net(
    tmp_path: Path,
    mode: str,
    *,
    carrier_lines: str = "",
    pbx_lines: str = "",
    manipulations: str | None = None,
) -> Net:
    directory = policy_copy(tmp_path, carrier_lines=carrier_lines, pbx_lines=pbx_lines)
    (directory / "sbc.yaml").write_text(f"topology: {{leak_guard: {mode}}}\n")
    if manipulations is not None:
        (directory / "manipulations.yaml").write_text(manipulations)
    net = Net(load_policy(directory))
    net.core.media = MediaAnchor(NoRelay(), PortPool())  # SDP rewritten, and checked
    return net


def names(message: Message, *hosts: str) -> list[str]:
    """The hosts of ``hosts`` that appear anywhere in the message as sent."""
    wire = message.serialize()
    return [h for h in hosts if _contains_host(wire, h.encode())]


def _contains_host(wire: bytes, host: bytes) -> bool:
    """``host`` standing alone (127.0.0.2 is not in 127.0.0.20)."""
    pos = wire.find(host)
    while pos >= 0:
        after = wire[pos + len(host) : pos + len(host) + 1]
        if not after.isdigit():
            return True
        pos = wire.find(host, pos + 1)
    return False


def leaks_counted(net: Net, part: str) -> dict[str, int]:
    return {action: n for (name, action), n in net.core.leaks.counts.items() if name == part}


def pbx_calls_carrier(net: Net, headers: list[tuple[str, str]] | None = None) -> Dlg:
    return net.pbx.invite("2125550100", headers=headers)


# --- a manipulation rule puts an internal address back ------------------------------

ADD_ORIGIN = """\
manipulations:
  - trunk: carrier
    direction: outbound
    rules:
      - name: leaky-origin
        methods: [INVITE]
        add: {{header: X-Origin, value: '<sip:gw@{host}:5060>'}}
"""


@pytest.mark.parametrize("host", INTERNAL, ids=["pbx", "internal-interface"])
@pytest.mark.parametrize("mode", MODES)
def test_manipulation_rule_putting_an_internal_address_back(
    tmp_path: Path, mode: str, host: str
) -> None:
    net = make_net(tmp_path, mode, manipulations=ADD_ORIGIN.format(host=host))
    pbx_calls_carrier(net)
    if mode == "block":
        assert net.carrier.requests("INVITE") == []
        # The B-leg failed as a transport error would: the caller gets 503 at once.
        assert net.pbx.take_response(503, "INVITE")
        net.settle()
        assert net.core.calls == {}
        assert leaks_counted(net, "X-Origin") == {"blocked": 1}
        return
    invite = net.carrier.take_request("INVITE")
    origin = invite.headers.get("X-Origin")
    if mode in ("off", "log"):
        assert origin == f"<sip:gw@{host}:5060>"  # the leak is real
        assert leaks_counted(net, "X-Origin") == ({} if mode == "off" else {"logged": 1})
    else:
        assert origin == f"<sip:gw@{EXTERNAL_HOST}:5060>"
        assert names(invite, *INTERNAL) == []
        assert leaks_counted(net, "X-Origin") == {"scrubbed": 1}
    # The call goes on as usual.
    net.carrier.respond(invite, 200, body=sdp(CARRIER_HOST))
    assert net.pbx.take_response(200, "INVITE")


# --- pass_headers lets an X- header with the PBX's address cross ------------------------


@pytest.mark.parametrize("mode", MODES)
def test_pass_header_carrying_the_pbx_address(tmp_path: Path, mode: str) -> None:
    net = make_net(tmp_path, mode, pbx_lines="    pass_headers: [X-Pbx-Contact]\n")
    pbx_calls_carrier(net, headers=[("X-Pbx-Contact", f"<sip:2000@{PBX_HOST}:5060>")])
    if mode == "block":
        assert net.carrier.requests("INVITE") == []
        assert net.pbx.take_response(503, "INVITE")
        return
    invite = net.carrier.take_request("INVITE")
    value = invite.headers.get("X-Pbx-Contact")
    if mode in ("off", "log"):
        assert value == f"<sip:2000@{PBX_HOST}:5060>"
    else:
        assert value == f"<sip:2000@{EXTERNAL_HOST}:5060>"
        assert names(invite, *INTERNAL) == []


# --- the other leg's Call-ID, copied into a header --------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_other_legs_call_id_in_a_passed_header(tmp_path: Path, mode: str) -> None:
    net = make_net(tmp_path, mode, carrier_lines="    pass_headers: [X-Correlation]\n")
    a_call_id = f"carrier-call-1@{CARRIER_HOST}"  # FakeUA's first Call-ID
    a = net.carrier.invite("1000", headers=[("X-Correlation", a_call_id)])
    assert a.call_id == a_call_id
    if mode == "block":
        assert net.pbx.requests("INVITE") == []
        assert net.carrier.take_response(503, "INVITE")
        return
    invite = net.pbx.take_request("INVITE")
    value = invite.headers.get("X-Correlation")
    if mode in ("off", "log"):
        assert value == a_call_id
    else:
        # This leg's own Call-ID stands in for the other leg's.
        assert value == invite.call_id
        assert a_call_id not in invite.serialize().decode()
    assert (
        leaks_counted(net, "X-Correlation")
        == {
            "off": {},
            "log": {"logged": 1},
            "auto": {"scrubbed": 1},
            "scrub": {"scrubbed": 1},
        }[mode]
    )


# --- bodies: a sipfrag NOTIFY and multipart INFO/MESSAGE --------------------------------

SIPFRAG = (
    "SIP/2.0 200 OK\r\n"
    f"Via: SIP/2.0/UDP {INTERNAL_HOST}:5060;branch=z9hG4bK-xfer-1\r\n"
    f"Contact: <sip:3000@{PBX_HOST}:5060>\r\n"
).encode()


def _transfer_notify(net: Net, a: Dlg, b: Dlg) -> Request:
    """The carrier transfers the call; the PBX reports progress with a sipfrag NOTIFY."""
    net.carrier.request(a, "REFER", headers=[("Refer-To", "<sip:3000@sbc.example>")])
    refer = net.pbx.take_request("REFER")
    net.pbx.respond(refer, 202)
    assert net.carrier.take_response(202, "REFER")
    return net.pbx.request(
        b,
        "NOTIFY",
        body=SIPFRAG,
        headers=[
            ("Event", "refer"),
            ("Subscription-State", "terminated;reason=noresource"),
            ("Content-Type", "message/sipfrag;version=2.0"),
        ],
    )


@pytest.mark.parametrize("mode", MODES)
def test_sipfrag_notify_naming_internal_addresses(tmp_path: Path, mode: str) -> None:
    net = make_net(tmp_path, mode)
    a, b = established(net, net.carrier, net.pbx)
    _transfer_notify(net, a, b)
    if mode == "block":
        assert net.carrier.requests("NOTIFY") == []
        assert net.pbx.take_response(503, "NOTIFY")  # the relay failed, cleanly
        assert len(net.core.calls) == 1  # the call itself goes on
        assert leaks_counted(net, "message/sipfrag") == {"blocked": 1}
        return
    notify = net.carrier.take_request("NOTIFY")
    if mode in ("off", "log"):
        assert notify.body == SIPFRAG
    else:
        assert names(notify, *INTERNAL) == []
        assert notify.body == (
            b"SIP/2.0 200 OK\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-xfer-1\r\n"
            b"Contact: <sip:3000@127.0.0.1:5060>\r\n"
        )
        # The serializer framed the shorter body: Content-Length matches.
        assert notify.headers.get("Content-Length") == str(len(notify.body))
        assert leaks_counted(net, "message/sipfrag") == {"scrubbed": 1}
    net.carrier.respond(notify, 200)
    assert net.pbx.take_response(200, "NOTIFY")


BOUNDARY = "leak-boundary-42"


def multipart_body() -> bytes:
    text = f"Transferred by pbx@{PBX_HOST}\r\n".encode()
    pidf = (
        f'<presence><tuple id="t1"><contact>sip:alice@{PBX_HOST}:5060</contact></tuple></presence>'
    )
    return (
        f"--{BOUNDARY}\r\nContent-Type: text/plain\r\nContent-Length: {len(text)}\r\n\r\n".encode()
        + text
        + f"\r\n--{BOUNDARY}\r\nContent-Type: application/pidf+xml\r\n\r\n{pidf}\r\n"
        f"--{BOUNDARY}--\r\n".encode()
    )


def part_lengths_agree(body: bytes) -> bool:
    for part in body.split(f"--{BOUNDARY}".encode())[1:-1]:
        head, _, content = part.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            stated = line.lower().startswith(b"content-length:") and int(line.split(b":")[1])
            if stated is not False and stated != len(content) - 2:
                return False
    return True


@pytest.mark.parametrize("method", ["INFO", "MESSAGE"])
@pytest.mark.parametrize("mode", MODES)
def test_multipart_body_naming_the_pbx(tmp_path: Path, mode: str, method: str) -> None:
    net = make_net(tmp_path, mode)
    _, b = established(net, net.carrier, net.pbx)
    body = multipart_body()
    content_type = f'multipart/mixed;boundary="{BOUNDARY}"'
    net.pbx.request(b, method, body=body, headers=[("Content-Type", content_type)])
    if mode == "block":
        assert net.carrier.requests(method) == []
        assert net.pbx.take_response(503, method)
        return
    out = net.carrier.take_request(method)
    if mode in ("off", "log"):
        assert out.body == body
    else:
        assert names(out, *INTERNAL) == []
        assert out.body.count(EXTERNAL_HOST.encode()) == 2
        assert part_lengths_agree(out.body)
        assert leaks_counted(net, "multipart/mixed") == {"scrubbed": 1}
    assert part_lengths_agree(body)


# --- where there is nothing to scrub: blocked, and the call ends cleanly ----------------


def test_answer_leaking_in_the_start_line_is_replaced_by_500_and_the_call_ended(
    tmp_path: Path,
) -> None:
    """A reason phrase cannot be rewritten under ``auto``: the 200 is withheld,
    the caller gets a bare 500, and both legs are cleaned up (BYE to the callee)."""
    net = make_net(tmp_path, "auto")
    net.carrier.invite("1000")
    invite = net.pbx.take_request("INVITE")
    net.pbx.respond(invite, 200, body=sdp(PBX_HOST), reason=f"OK from {PBX_HOST}")
    assert net.core.leaks.counts == {("start-line", "blocked"): 1}
    fail = net.carrier.take_response(500, "INVITE")
    assert names(fail, *INTERNAL) == []
    assert net.carrier.responses(200) == []
    # The callee's 2xx is ACKed and its dialog ended with BYE.
    assert net.pbx.take_request("ACK")
    net.pbx.respond(net.pbx.take_request("BYE"), 200)
    net.settle()
    assert net.core.calls == {}


# --- no false alarms: what a peer sent itself comes back to it ----------------------------


def test_a_pbx_naming_the_sbc_public_address_in_its_from_is_not_a_leak(tmp_path: Path) -> None:
    """PBXes often put the SBC's public address (or the carrier's domain) in
    their From/To: the responses and the in-dialog requests back to the PBX
    carry it as the PBX chose it, under ``block`` too."""
    net = make_net(tmp_path, "block")
    net.pbx.clear()
    dlg = _pbx_invite_from(
        net.pbx, f"<sip:2000@{EXTERNAL_HOST}>", f"<sip:2125550100@{CARRIER_HOST}>"
    )
    invite = net.carrier.take_request("INVITE")
    net.carrier.respond(invite, 200, body=sdp(CARRIER_HOST))
    ok = net.pbx.take_response(200, "INVITE")
    assert EXTERNAL_HOST in (ok.headers.get("From") or "")
    net.pbx.ack(dlg)
    b = net.carrier.dialog_of(invite)
    net.carrier.request(b, "BYE")
    bye = net.pbx.take_request("BYE")
    assert CARRIER_HOST in (bye.headers.get("From") or "")  # our From is the PBX's To
    assert net.core.leaks.counts == {}


def _pbx_invite_from(pbx: FakeUA, from_uri: str, to_uri: str) -> Dlg:
    dlg = pbx.invite("2125550100", send=False)
    assert dlg.invite is not None
    text = dlg.invite.serialize().decode()
    text = text.replace(f"From: <sip:pbx@{PBX_HOST}>", f"From: {from_uri}")
    text = text.replace(f"To: <sip:2125550100@{INTERNAL_HOST}>", f"To: {to_uri}")
    request = parse_message(text.encode())
    assert isinstance(request, Request)
    dlg.invite = request
    dlg.local_uri, dlg.remote_uri = from_uri, to_uri
    pbx.net.deliver(pbx, text.encode())
    return dlg


def test_a_redirect_to_an_internal_target_comes_back_through_the_sbc(tmp_path: Path) -> None:
    """A 3xx's Contact is the target relayed from the other leg (RFC 3261 §21.3),
    not the SBC's own Contact: under ``auto`` an internal one is rewritten to the
    SBC's address (the carrier could not reach the PBX's anyway)."""
    net = make_net(tmp_path, "auto")
    net.carrier.invite("1000")
    invite = net.pbx.take_request("INVITE")
    net.pbx.respond(invite, 302, headers=[("Contact", f"<sip:3000@{PBX_HOST}:5060>")])
    moved = net.carrier.take_response(302, "INVITE")
    assert moved.headers.get("Contact") == f"<sip:3000@{EXTERNAL_HOST}:5060>"
    assert leaks_counted(net, "Contact") == {"scrubbed": 1}


# --- the needles follow the policy and the call -------------------------------------------


def test_a_reload_rebuilds_the_needles(tmp_path: Path) -> None:
    """A trunk added on the inside by a hot reload is a secret on the outside from
    the next message on (the needle sets are compiled at each policy swap)."""
    net = make_net(tmp_path, "auto", pbx_lines="    pass_headers: [X-Site]\n")
    pbx_calls_carrier(net, headers=[("X-Site", "<sip:10.9.9.9>")])
    assert net.carrier.take_request("INVITE").headers.get("X-Site") == "<sip:10.9.9.9>"
    directory = tmp_path / "policies"
    trunks = (directory / "trunks.yaml").read_text()
    (directory / "trunks.yaml").write_text(
        trunks + "  - name: pbx-b\n    interface: internal\n    address: 10.9.9.9\n"
    )
    net.core.set_policy(load_policy(directory), net.now)
    pbx_calls_carrier(net, headers=[("X-Site", "<sip:10.9.9.9>")])
    assert net.carrier.take_request("INVITE").headers.get("X-Site") == f"<sip:{EXTERNAL_HOST}>"


def test_the_callee_tag_of_a_forked_answer_is_caught(tmp_path: Path) -> None:
    """The other leg's identifiers are read again when its dialog changes: a 200
    from another fork than the 180 brings a new To tag, and a header carrying it
    toward the caller is caught (kept identifiers would miss it)."""
    net = make_net(tmp_path, "auto", pbx_lines="    pass_headers: [X-Leg]\n")
    a = net.carrier.invite("1000")
    invite = net.pbx.take_request("INVITE")
    net.pbx.respond(invite, 180)
    assert net.carrier.take_response(180, "INVITE")
    ok = net.pbx.respond(invite, 200, body=sdp(PBX_HOST), send=False)
    fork_tag = "fork-two-tag-9f8e7d"
    wire = ok.serialize().decode().replace(f"tag={ok.to.tag}", f"tag={fork_tag}")
    wire = wire.replace("Content-Length:", f"X-Leg: {fork_tag}\r\nContent-Length:", 1)
    net.deliver(net.pbx, wire.encode())
    answer = net.carrier.take_response(200, "INVITE")
    assert fork_tag not in answer.serialize().decode()
    # In its place, this leg's tag of the same role: the far end's own, the caller's.
    assert answer.headers.get("X-Leg") == a.local_tag
    assert leaks_counted(net, "X-Leg") == {"scrubbed": 1}


def test_stateless_answers_are_checked_too(tmp_path: Path) -> None:
    """What the core emits without a transaction passes the guard as well; the
    request's own headers, echoed back to the stranger who sent them, are not a leak."""
    net = make_net(tmp_path, "block")
    stranger = net.add_peer("stranger", "127.0.0.99")
    stranger.invite("1000", headers=[("Subject", f"call {PBX_HOST}")])
    refused = stranger.take_response(403, "INVITE")
    assert f"{PBX_HOST}" not in (refused.headers.get("Subject") or "")
    wire = refused.serialize()
    assert net.core.leaks.screen_wire(wire, "external") == wire
    leaky = wire.replace(
        b"Content-Length:", b'Warning: 399 10.0.0.1 "see 127.0.0.20"\r\nContent-Length:'
    )
    assert net.core.leaks.screen_wire(leaky, "external") is None
    assert leaks_counted(net, "Warning") == {"blocked": 1}
