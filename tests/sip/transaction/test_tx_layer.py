"""The transaction layer: matching (§17.1.3, §17.2.3), CANCEL (§9.2), response
routing (§18.2.2, RFC 3581), transport errors, the timer heap, and scale."""

from __future__ import annotations

import pytest
from txhelpers import (
    PEER,
    PEER_TCP,
    TCP,
    UDP,
    kinds,
    make_request,
    make_response,
    only,
    run_until,
    sent,
    statuses,
)

from sbc.sip.message import Response
from sbc.sip.target import Target
from sbc.sip.transaction import (
    CancelReceived,
    RequestReceived,
    ServerTransaction,
    State,
    StrayResponse,
    TransactionLayer,
    TransactionTerminated,
    Transmit,
    TransportFailure,
)


def new_invite(layer: TransactionLayer, **kw: object) -> ServerTransaction:
    actions = layer.receive_request(make_request("INVITE", **kw), UDP, 0.0)  # type: ignore[arg-type]
    received = only(actions, RequestReceived)[0]
    assert received.transaction is not None
    return received.transaction


# --- server matching -------------------------------------------------------


def test_same_branch_different_method_is_another_transaction() -> None:
    layer = TransactionLayer()
    new_invite(layer)
    actions = layer.receive_request(make_request("OPTIONS"), UDP, 0.1)
    assert kinds(actions) == ["RequestReceived"]
    assert len(layer) == 2


def test_same_branch_different_sent_by_is_another_transaction() -> None:
    layer = TransactionLayer()
    new_invite(layer)
    other_host = layer.receive_request(make_request("INVITE", host="192.0.2.99"), UDP, 0.1)
    other_port = layer.receive_request(make_request("INVITE", port=5099), UDP, 0.1)
    assert kinds(other_host) == ["Transmit", "RequestReceived"]
    assert kinds(other_port) == ["Transmit", "RequestReceived"]
    assert len(layer) == 3


def test_sent_by_without_port_matches_default_port() -> None:
    layer = TransactionLayer()
    new_invite(layer, port=5060)
    assert kinds(layer.receive_request(make_request("INVITE", port=None), UDP, 0.1)) == ["Transmit"]


def test_rfc2543_request_without_cookie_matches_by_dialog_fields() -> None:
    layer = TransactionLayer()
    tx = new_invite(layer, branch=None)
    assert statuses(layer.receive_request(make_request("INVITE", branch=None), UDP, 0.2)) == [100]
    other = layer.receive_request(make_request("INVITE", branch=None, cseq=2), UDP, 0.2)
    assert kinds(other) == ["Transmit", "RequestReceived"]
    layer.send_response(tx, make_response(tx.request, 486), 0.3)
    ack = make_request("ACK", branch=None, to_tag="to-1")
    assert layer.receive_request(ack, UDP, 0.4) == []
    assert tx.state is State.CONFIRMED


def test_ack_matching_nothing_goes_to_core() -> None:
    layer = TransactionLayer()
    ack = make_request("ACK", to_tag="x", branch="z9hG4bK-lonely")
    assert layer.receive_request(ack, UDP, 0.0) == [RequestReceived(ack, UDP, None)]
    assert len(layer) == 0


# --- client matching -------------------------------------------------------


def test_response_matching() -> None:
    layer = TransactionLayer()
    invite = make_request("INVITE", branch="z9hG4bK-out")
    tx, _ = layer.send_request(invite, PEER, 0.0)
    wrong_method = make_response(make_request("BYE", branch="z9hG4bK-out"), 200)
    assert layer.receive_response(wrong_method, PEER, 0.1) == [StrayResponse(wrong_method, PEER)]
    unknown = make_response(make_request("INVITE", branch="z9hG4bK-other"), 200)
    assert kinds(layer.receive_response(unknown, PEER, 0.1)) == ["StrayResponse"]
    no_branch = make_response(make_request("INVITE", branch=None), 200)
    assert kinds(layer.receive_response(no_branch, PEER, 0.1)) == ["StrayResponse"]
    assert tx.state is State.CALLING
    assert kinds(layer.receive_response(make_response(invite, 180), PEER, 0.1)) == [
        "ResponseReceived"
    ]


def test_send_request_refuses_ack_missing_branch_and_duplicates() -> None:
    layer = TransactionLayer()
    with pytest.raises(ValueError, match="ACK"):
        layer.send_request(make_request("ACK", to_tag="t"), PEER, 0.0)
    with pytest.raises(ValueError, match="branch"):
        layer.send_request(make_request("OPTIONS", branch=None), PEER, 0.0)
    layer.send_request(make_request("OPTIONS"), PEER, 0.0)
    with pytest.raises(ValueError, match="exists"):
        layer.send_request(make_request("OPTIONS"), PEER, 0.0)
    assert len(layer) == 1


def test_transmit_is_stateless() -> None:
    layer = TransactionLayer()
    ack = make_request("ACK", to_tag="t")
    assert layer.transmit(ack, PEER) == [Transmit(ack.serialize(), PEER)]
    assert len(layer) == 0
    assert layer.get_timer() is None


# --- CANCEL (§9.2) ---------------------------------------------------------


def test_cancel_of_proceeding_invite() -> None:
    layer = TransactionLayer()
    invite_tx = new_invite(layer)
    layer.send_response(invite_tx, make_response(invite_tx.request, 180, to_tag="ring"), 0.1)
    cancel = make_request("CANCEL")
    actions = layer.receive_request(cancel, UDP, 0.5)
    assert kinds(actions) == ["Transmit", "CancelReceived"]
    (ok,) = sent(actions)
    assert isinstance(ok, Response)
    assert ok.status == 200
    assert str(ok.cseq) == "1 CANCEL"
    assert ok.to.tag == "ring"  # §9.2: same To tag as the INVITE's responses
    assert actions[1] == CancelReceived(cancel, UDP, invite_tx)
    # the core answers the INVITE with 487; the CANCEL's retransmission gets 200 only
    assert statuses(layer.send_response(invite_tx, make_response(cancel, 487), 0.6)) == [487]
    assert statuses(layer.receive_request(make_request("CANCEL"), UDP, 0.7)) == [200]
    assert len(layer) == 2


def test_cancel_without_invite_gets_481() -> None:
    layer = TransactionLayer()
    actions = layer.receive_request(make_request("CANCEL"), UDP, 0.0)
    assert statuses(actions) == [481]
    assert kinds(actions) == ["Transmit"]
    assert statuses(layer.receive_request(make_request("CANCEL"), UDP, 0.5)) == [481]
    run_until(layer, 100.0)
    assert len(layer) == 0


@pytest.mark.parametrize("status", [200, 486])
def test_cancel_after_final_gets_200_only(status: int) -> None:
    layer = TransactionLayer()
    invite_tx = new_invite(layer)
    layer.send_response(invite_tx, make_response(invite_tx.request, status), 0.1)
    actions = layer.receive_request(make_request("CANCEL"), UDP, 0.5)
    assert statuses(actions) == [200]
    assert kinds(actions) == ["Transmit"]


# --- where responses go (§18.2.2, RFC 3581) --------------------------------


@pytest.mark.parametrize(
    ("rport", "via_port", "expected"),
    [
        (True, 5080, Target("ext", "udp", "192.0.2.10", 40000)),
        (False, 5080, Target("ext", "udp", "192.0.2.10", 5080)),
        (False, None, Target("ext", "udp", "192.0.2.10", 5060)),
        (False, 40000, Target("ext", "udp", "192.0.2.10", 40000)),
    ],
)
def test_udp_response_target(rport: bool, via_port: int | None, expected: Target) -> None:
    layer = TransactionLayer()
    source = Target("ext", "udp", "192.0.2.10", 40000)
    request = make_request("OPTIONS", host="10.0.0.5", port=via_port, rport=rport)
    (received,) = layer.receive_request(request, source, 0.0)
    assert isinstance(received, RequestReceived)
    assert received.transaction is not None
    assert received.transaction.target == expected
    actions = layer.send_response(received.transaction, make_response(request, 200), 0.1)
    assert only(actions, Transmit)[0].target == expected


def test_tcp_response_target_is_the_connection() -> None:
    layer = TransactionLayer()
    request = make_request("OPTIONS", transport="TCP", host="10.0.0.5", port=5099)
    (received,) = layer.receive_request(request, TCP, 0.0)
    assert isinstance(received, RequestReceived)
    assert received.transaction is not None
    assert received.transaction.target == TCP


# --- transport errors ------------------------------------------------------


def test_transport_error_fails_only_transactions_to_that_target() -> None:
    layer = TransactionLayer()
    a, _ = layer.send_request(make_request("OPTIONS", branch="z9hG4bK-a"), PEER, 0.0)
    b, _ = layer.send_request(make_request("INVITE", branch="z9hG4bK-b"), PEER, 0.0)
    c, _ = layer.send_request(make_request("OPTIONS", branch="z9hG4bK-c"), PEER_TCP, 0.0)
    actions = layer.transport_error(PEER, 0.1)
    assert {x.transaction for x in only(actions, TransportFailure)} == {a, b}
    assert {x.transaction for x in only(actions, TransactionTerminated)} == {a, b}
    assert len(layer) == 1
    assert c.state is State.TRYING
    assert layer.transport_error(PEER, 0.2) == []
    assert layer.transport_error(Target("x", "udp", "203.0.113.1", 5060), 0.2) == []


# --- heap and scale ----------------------------------------------------------


def test_get_timer_skips_stale_entries() -> None:
    layer = TransactionLayer()
    tx, _ = layer.send_request(make_request("INVITE"), PEER, 0.0)
    assert layer.get_timer() == 0.5
    layer.receive_response(make_response(tx.request, 180), PEER, 0.1)
    assert layer.get_timer() is None
    assert layer.handle_timer(100.0) == []


def test_ten_thousand_transactions_drain() -> None:
    layer = TransactionLayer()
    n = 10_000
    now = 0.0
    for i in range(n):
        now = i * 0.001
        call = f"call-{i}"
        # inbound INVITE answered 200, then ACKed with a new branch
        invite = make_request("INVITE", branch=f"z9hG4bK-in-{i}", call_id=call)
        (_, received) = layer.receive_request(invite, UDP, now)
        assert isinstance(received, RequestReceived)
        assert received.transaction is not None
        layer.send_response(received.transaction, make_response(invite, 200), now)
        ack = make_request("ACK", branch=f"z9hG4bK-ack-{i}", call_id=call, to_tag="to-1")
        layer.receive_request(ack, UDP, now + 0.0005)
        # outbound INVITE rejected, outbound BYE answered
        out = make_request("INVITE", branch=f"z9hG4bK-out-{i}", call_id=call)
        layer.send_request(out, PEER, now)
        layer.receive_response(make_response(out, 503), PEER, now + 0.0005)
        bye = make_request("BYE", branch=f"z9hG4bK-bye-{i}", call_id=call, cseq=2)
        layer.send_request(bye, PEER, now)
        layer.receive_response(make_response(bye, 200), PEER, now + 0.0005)
    assert len(layer) == 3 * n
    assert layer.pending_acks == 0
    ended = layer.handle_timer(now + 1000.0)
    assert len(only(ended, TransactionTerminated)) == 3 * n
    assert len(layer) == 0
    assert layer.get_timer() is None
    assert not layer._heap
