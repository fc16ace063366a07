"""INVITE client transaction (RFC 3261 §17.1.1, RFC 6026 §7.2) through the layer."""

from __future__ import annotations

import pytest
from txhelpers import PEER, PEER_TCP, kinds, make_request, make_response, only, run_until, sent

from sbc.sip.message import Request
from sbc.sip.target import Target
from sbc.sip.transaction import (
    Action,
    ClientInviteTransaction,
    ClientTransaction,
    ResponseReceived,
    State,
    StrayResponse,
    TimerConfig,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    Transmit,
    TransportFailure,
)
from sbc.sip.transaction.base import Input


def start(
    target: Target = PEER,
) -> tuple[TransactionLayer, Request, ClientTransaction, list[Action]]:
    layer = TransactionLayer()
    invite = make_request("INVITE", transport=target.transport.upper())
    tx, actions = layer.send_request(invite, target, 0.0)
    return layer, invite, tx, actions


def test_invite_is_sent_once_and_timer_a_doubles_until_timer_b() -> None:
    layer, invite, tx, actions = start()
    assert [a.data for a in only(actions, Transmit)] == [invite.serialize()]
    assert tx.state is State.CALLING
    assert tx.is_invite
    assert layer.get_timer() == 0.5
    fired = run_until(layer, 31.99)
    assert [t for t, a in fired if isinstance(a, Transmit)] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert all(a.data == invite.serialize() for _, a in fired if isinstance(a, Transmit))
    assert layer.get_timer() == 32.0
    timeout = layer.handle_timer(32.0)
    assert kinds(timeout) == ["TransactionTimeout", "TransactionTerminated"]
    assert timeout[0] == TransactionTimeout(tx)
    assert tx.terminated
    assert len(layer) == 0
    assert layer.get_timer() is None


def test_timer_a_uncapped_with_small_t2() -> None:
    layer = TransactionLayer(TimerConfig(t1=1.0, t2=1.0))
    layer.send_request(make_request(), PEER, 0.0)
    fired = run_until(layer, 63.9)
    assert [t for t, a in fired if isinstance(a, Transmit)] == [1, 3, 7, 15, 31, 63]


def test_provisional_stops_retransmission_and_timer_b() -> None:
    layer, invite, tx, _ = start()
    ringing = make_response(invite, 180)
    actions = layer.receive_response(ringing, PEER, 0.2)
    assert actions == [ResponseReceived(ringing, tx)]
    assert tx.state is State.PROCEEDING
    assert tx.last_response is ringing
    assert layer.get_timer() is None
    assert run_until(layer, 1000.0) == []
    again = layer.receive_response(make_response(invite, 183), PEER, 1.0)
    assert kinds(again) == ["ResponseReceived"]
    assert tx.state is State.PROCEEDING


@pytest.mark.parametrize("provisional_first", [False, True])
def test_non_2xx_is_acked_and_reported_once(provisional_first: bool) -> None:
    layer, invite, tx, _ = start()
    if provisional_first:
        layer.receive_response(make_response(invite, 100, to_tag=None), PEER, 0.1)
    busy = make_response(invite, 486)
    actions = layer.receive_response(busy, PEER, 0.3)
    assert kinds(actions) == ["Transmit", "ResponseReceived"]
    assert tx.state is State.COMPLETED
    (ack,) = sent(actions)
    assert isinstance(ack, Request)
    assert ack.method == "ACK"
    assert str(ack.uri) == str(invite.uri)
    assert ack.headers.get_all("Via") == invite.headers.get_all("Via")
    assert ack.top_via.branch == invite.top_via.branch
    assert ack.to.tag == "to-1"
    assert ack.from_.tag == invite.from_.tag
    assert ack.call_id == invite.call_id
    assert str(ack.cseq) == "1 ACK"
    assert ack.headers.get_all("Route") == invite.headers.get_all("Route")
    assert only(actions, Transmit)[0].target == PEER
    # the final's retransmission: ACK again (same bytes), nothing reported
    again = layer.receive_response(make_response(invite, 486), PEER, 1.0)
    assert kinds(again) == ["Transmit"]
    assert again[0] == actions[0]
    # nothing more is retransmitted; Timer D ends it after 32 s
    assert layer.get_timer() == pytest.approx(32.3)
    end = run_until(layer, 100.0)
    expected: object = [(pytest.approx(32.3), "TransactionTerminated")]
    assert [(t, type(a).__name__) for t, a in end] == expected
    assert len(layer) == 0


@pytest.mark.parametrize("provisional_first", [False, True])
def test_2xx_moves_to_accepted_and_retransmissions_are_stray(provisional_first: bool) -> None:
    layer, invite, tx, _ = start()
    if provisional_first:
        layer.receive_response(make_response(invite, 180), PEER, 0.1)
    ok = make_response(invite, 200)
    assert layer.receive_response(ok, PEER, 0.4) == [ResponseReceived(ok, tx)]
    assert tx.state is State.ACCEPTED
    assert layer.get_timer() == pytest.approx(32.4)  # Timer M, no more retransmission
    again = make_response(invite, 200)
    assert layer.receive_response(again, PEER, 1.0) == [StrayResponse(again, PEER)]
    fork = make_response(invite, 200, to_tag="other-fork")
    assert kinds(layer.receive_response(fork, PEER, 2.0)) == ["StrayResponse"]
    # a late provisional or non-2xx is absorbed in Accepted
    assert layer.receive_response(make_response(invite, 180), PEER, 2.0) == []
    assert layer.receive_response(make_response(invite, 500), PEER, 2.0) == []
    assert kinds(layer.handle_timer(32.4)) == ["TransactionTerminated"]
    assert len(layer) == 0
    # after Timer M a 2xx matches nothing: stray for the core to re-ACK
    assert kinds(layer.receive_response(again, PEER, 40.0)) == ["StrayResponse"]


def test_completed_absorbs_provisionals_and_2xx() -> None:
    layer, invite, tx, _ = start()
    layer.receive_response(make_response(invite, 404), PEER, 0.1)
    assert layer.receive_response(make_response(invite, 180), PEER, 0.2) == []
    assert layer.receive_response(make_response(invite, 200), PEER, 0.2) == []
    assert tx.state is State.COMPLETED


def test_transport_error_in_calling_and_proceeding() -> None:
    layer, _, tx, _ = start()
    actions = layer.transport_error(PEER, 0.1)
    assert actions == [TransportFailure(tx), TransactionTerminated(tx)]
    assert len(layer) == 0
    assert layer.get_timer() is None
    layer, invite, tx, _ = start()
    layer.receive_response(make_response(invite, 180), PEER, 0.1)
    assert kinds(layer.transport_error(PEER, 0.2)) == ["TransportFailure", "TransactionTerminated"]


def test_transport_error_in_completed_terminates_silently() -> None:
    layer, invite, tx, _ = start()
    layer.receive_response(make_response(invite, 503), PEER, 0.1)
    assert layer.transport_error(PEER, 0.2) == [TransactionTerminated(tx)]


def test_transport_error_in_accepted_is_ignored() -> None:
    layer, invite, tx, _ = start()
    layer.receive_response(make_response(invite, 200), PEER, 0.1)
    assert layer.transport_error(PEER, 0.2) == []
    assert tx.state is State.ACCEPTED


def test_reliable_transport_no_timer_a_and_timer_d_zero() -> None:
    layer, invite, tx, actions = start(PEER_TCP)
    assert len(only(actions, Transmit)) == 1
    assert layer.get_timer() == 32.0  # only Timer B
    busy = make_response(invite, 486)
    actions = layer.receive_response(busy, PEER_TCP, 1.0)
    assert kinds(actions) == ["Transmit", "ResponseReceived", "TransactionTerminated"]
    assert tx.state is State.TERMINATED
    assert len(layer) == 0


def test_reliable_timer_b_still_applies() -> None:
    layer, _, _tx, _ = start(PEER_TCP)
    fired = run_until(layer, 40.0)
    assert [(t, type(a).__name__) for t, a in fired] == [
        (32.0, "TransactionTimeout"),
        (32.0, "TransactionTerminated"),
    ]


def test_cancel_bounds_proceeding_to_64_t1() -> None:
    """§9.1: no final 64*T1 after CANCEL: the INVITE transaction is given up."""
    layer, invite, tx, _ = start()
    layer.receive_response(make_response(invite, 180), PEER, 1.0)
    cancel = make_request("CANCEL")
    _cancel_tx, _ = layer.send_request(cancel, PEER, 10.0)
    layer.receive_response(make_response(cancel, 200), PEER, 10.1)
    fired = run_until(layer, 100.0)
    assert (42.0, TransactionTimeout(tx)) in fired
    assert (42.0, TransactionTerminated(tx)) in fired
    assert len(layer) == 0


def test_cancel_then_487_completes_normally() -> None:
    layer, invite, tx, _ = start()
    layer.receive_response(make_response(invite, 180), PEER, 1.0)
    layer.send_request(make_request("CANCEL"), PEER, 2.0)
    actions = layer.receive_response(make_response(invite, 487), PEER, 2.1)
    assert kinds(actions) == ["Transmit", "ResponseReceived"]
    fired = run_until(layer, 100.0)
    assert [t for t, a in fired if a == TransactionTerminated(tx)] == [pytest.approx(34.1)]
    assert TransactionTimeout(tx) not in [a for _, a in fired]


def test_machine_alone_absorbs_inputs_without_an_edge() -> None:
    invite = make_request()
    tx = ClientInviteTransaction(("b", "INVITE"), invite, PEER, TimerConfig())
    assert kinds(tx.start(0.0)) == ["Transmit"]
    assert tx.get_timer() == 0.5
    assert tx.handle_timer(0.4) == []
    assert kinds(tx.handle_timer(0.5)) == ["Transmit"]
    assert tx.get_timer() == 1.5
    assert tx._step(Input.TIMER_K, 1.0) == []  # no such edge: absorbed
    assert tx.state is State.CALLING
