"""A request whose handling raises outside any call gets 500, and its
transaction ends as an answered one does (issue 11: unhandled exceptions
leaked server transactions with no timer, forever)."""

from __future__ import annotations

from pathlib import Path

import pytest
from peers import Net, sdp
from test_registration_relay import PHONE_HOST, make_net

import sbc.b2bua.core as core_module
from sbc.b2bua import call_setup
from sbc.b2bua.core import Core
from sbc.sip.message import Request, Response, parse_message
from sbc.sip.target import Target


def _boom(*_args: object, **_kwargs: object) -> None:
    raise RuntimeError("boom")


def _ack_for(invite: Request, final: Response) -> bytes:
    """The ACK for a non-2xx final: same branch, the answer's To (RFC 3261 §17.1.1.3)."""
    return (
        f"ACK {invite.uri} SIP/2.0\r\n"
        f"Via: {invite.headers.get('Via')}\r\n"
        f"From: {invite.headers.get('From')}\r\n"
        f"To: {final.headers.get('To')}\r\n"
        f"Call-ID: {invite.call_id}\r\n"
        f"CSeq: {invite.cseq.seq} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_options_handler_raising_gets_one_500_and_timer_j_ends_it(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Core, "_options", _boom)
    out = net.deliver_from(net.carrier.source, _options())
    assert [_status(t.data) for t in out] == [500]
    assert net.core.stats["request_errors"] == 1
    assert len(net.core.layer) == 1  # answered through its transaction...
    net.advance(33)  # ...which Timer J (64*T1) ends
    assert len(net.core.layer) == 0
    assert len(net.carrier.responses(500)) == 1


def test_invite_handler_raising_gets_500_and_timer_h_ends_it(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core_module, "new_call", _boom)
    dlg = net.carrier.invite()
    final = net.carrier.take_response(500, "INVITE")
    assert dlg.invite is not None
    net.deliver(net.carrier, _ack_for(dlg.invite, final))
    net.advance(64)
    assert net.carrier.responses(500) == []  # ACKed: never re-sent
    assert len(net.core.layer) == 0
    assert net.core.calls == {}


def test_unacked_500_ends_with_timer_h(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core_module, "new_call", _boom)
    net.carrier.invite()
    net.advance(64)
    assert {r.status for r in net.carrier.responses(method="INVITE")} == {100, 500}
    assert len(net.core.layer) == 0
    assert net.core.get_timer() is None


def test_a_failure_after_the_call_exists_tears_the_call_down(net: Net) -> None:
    def on_event(event: str, _call: object) -> None:
        if event == "started":
            raise RuntimeError("boom")

    net.core.on_call_event = on_event
    net.carrier.invite()
    assert net.carrier.take_response(500, "INVITE")
    assert net.core.calls == {}
    assert net.core.dialogs == {}
    assert net.core.admission.active("global") == 0  # its admission was given back
    net.settle()
    assert len(net.core.layer) == 0


def test_a_failure_before_any_transaction_is_answered_statelessly(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core_module, "ingress_trunk", _boom)
    out = net.deliver_from(net.carrier.source, _options())
    assert [_status(t.data) for t in out] == [500]
    assert len(net.core.layer) == 0


def test_the_next_request_is_served(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(Core, "_options", _boom)
        net.deliver_from(net.carrier.source, _options())
    out = net.deliver_from(net.carrier.source, _options(branch="z9hG4bK-o2"))
    assert [_status(t.data) for t in out] == [200]


def test_failures_are_logged_once_per_kind_per_minute(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    logged: list[dict[str, object]] = []
    monkeypatch.setattr(Core, "_options", _boom)
    monkeypatch.setattr(
        "sbc.b2bua.failures.log.error", lambda event, **kw: logged.append({"event": event, **kw})
    )
    for n in range(5):
        net.deliver_from(net.carrier.source, _options(branch=f"z9hG4bK-f{n}"))
    assert len(logged) == 1
    assert isinstance(logged[0]["exc_info"], RuntimeError)
    net.advance(61)
    net.deliver_from(net.carrier.source, _options(branch="z9hG4bK-later"))
    assert len(logged) == 2
    assert logged[1]["not_logged_since"] == 4
    assert net.core.stats["request_errors"] == 6


@pytest.mark.parametrize("expires", ["²", "1" * 5000])
def test_a_register_with_a_strange_expires_leaves_no_transaction(
    tmp_path: Path, expires: str
) -> None:
    net, _ = make_net(tmp_path)
    data = (
        "REGISTER sip:127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.168.1.5:5060;branch=z9hG4bK-exp;rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:alice@example.net>;tag=ph\r\n"
        "To: <sip:alice@example.net>\r\nCall-ID: exp@192.168.1.5\r\nCSeq: 1 REGISTER\r\n"
        f"Contact: <sip:alice@192.168.1.5:5060>\r\nExpires: {expires}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    out = net.deliver_from(Target("external", "udp", PHONE_HOST, 40000), data)
    for upstream in net.carrier.requests("REGISTER"):  # if it was relayed: the registrar says no
        net.carrier.respond(upstream, 400)
    net.advance(64)
    answers = [t for t, _ in net.log if t.host == PHONE_HOST]
    assert len(answers) == 1, out  # one final answer, whatever it is
    assert len(net.core.layer) == 0


def _options(branch: str = "z9hG4bK-o1") -> bytes:
    return (
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.10:5060;branch={branch}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:carrier@127.0.0.10>;tag=o\r\n"
        "To: <sip:127.0.0.1>\r\nCall-ID: opt@127.0.0.10\r\nCSeq: 1 OPTIONS\r\n"
        "Contact: <sip:carrier@127.0.0.10:5060>\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def _status(data: bytes) -> int:
    message = parse_message(data)
    assert isinstance(message, Response)
    return message.status


def test_a_failed_call_setup_releases_nothing_twice(net: Net) -> None:
    """After the aborted call, calls are admitted and carried as before."""
    calls = {"n": 0}

    def on_event(event: str, _call: object) -> None:
        if event == "started":
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("boom")

    net.core.on_call_event = on_event
    net.carrier.invite()
    net.carrier.take_response(500, "INVITE")
    a = net.carrier.invite(body=sdp("127.0.0.10"))
    invite = net.pbx.take_request("INVITE")
    net.pbx.respond(invite, 200, body=sdp("127.0.0.20"))
    net.carrier.ack(a)
    assert len(net.core.calls) == 1


def test_a_call_setup_raising_gives_its_admission_back(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception between admitting a call and creating it must not keep its
    slots: enough of them would refuse every later call (admission as a DoS)."""
    monkeypatch.setattr(call_setup, "_create_call", _boom)
    net.carrier.invite()
    assert net.carrier.take_response(500, "INVITE")
    assert net.core.admission.scopes() == {}
