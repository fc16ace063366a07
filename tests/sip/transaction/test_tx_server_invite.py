"""INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §7.1) and the 2xx
retransmission until ACK (§13.3.1.4), through the layer."""

from __future__ import annotations

import pytest
from txhelpers import TCP, UDP, kinds, make_request, make_response, only, run_until, statuses

from sbc.sip.message import Request
from sbc.sip.target import Target
from sbc.sip.transaction import (
    AckTimeout,
    RequestReceived,
    ServerInviteTransaction,
    ServerTransaction,
    State,
    TransactionLayer,
    TransactionTerminated,
    Transmit,
)


def start(source: Target = UDP) -> tuple[TransactionLayer, ServerTransaction]:
    layer = TransactionLayer()
    invite = make_request("INVITE", transport=source.transport.upper(), port=source.port)
    actions = layer.receive_request(invite, source, 0.0)
    assert kinds(actions) == ["Transmit", "RequestReceived"]
    assert statuses(actions) == [100]
    received = actions[1]
    assert isinstance(received, RequestReceived)
    tx = received.transaction
    assert isinstance(tx, ServerInviteTransaction)
    assert received.request is invite
    assert received.source == source
    assert tx.state is State.PROCEEDING
    assert tx.is_invite
    assert layer.get_timer() is None
    return layer, tx


def ack_for(tx: ServerTransaction, *, branch: str | None = None) -> Request:
    return make_request(
        "ACK",
        to_tag="to-1",
        branch=branch or tx.request.top_via.branch,
        transport=tx.request.top_via.transport,
        port=tx.request.top_via.port,
    )


def test_100_trying_at_once_and_retransmission_gets_last_provisional() -> None:
    layer, tx = start()
    assert statuses(layer.receive_request(tx.request, UDP, 0.5)) == [100]
    layer.send_response(tx, make_response(tx.request, 180), 1.0)
    again = layer.receive_request(make_request("INVITE"), UDP, 1.5)
    assert statuses(again) == [180]
    assert kinds(again) == ["Transmit"]
    assert statuses(layer.send_response(tx, make_response(tx.request, 183), 2.0)) == [183]
    assert tx.last_response is not None
    assert tx.last_response.status == 183


def test_non_2xx_timer_g_up_to_t2_then_timer_h_without_ack() -> None:
    layer, tx = start()
    actions = layer.send_response(tx, make_response(tx.request, 486), 0.0)
    assert statuses(actions) == [486]
    assert tx.state is State.COMPLETED
    fired = run_until(layer, 31.99)
    transmits = [(t, a) for t, a in fired if isinstance(a, Transmit)]
    assert [t for t, _ in transmits] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert all(a.data == actions[0].data for _, a in transmits)  # type: ignore[union-attr]
    assert statuses(layer.receive_request(tx.request, UDP, 31.99)) == [486]
    assert layer.handle_timer(32.0) == [TransactionTerminated(tx)]  # Timer H
    assert len(layer) == 0
    assert layer.get_timer() is None


def test_ack_confirms_then_timer_i() -> None:
    layer, tx = start()
    layer.send_response(tx, make_response(tx.request, 404), 0.0)
    assert layer.receive_request(ack_for(tx), UDP, 0.7) == []
    assert tx.state is State.CONFIRMED
    assert layer.get_timer() == pytest.approx(5.7)  # Timer I = T4; G and H stopped
    # ACK and INVITE retransmissions are absorbed in Confirmed
    assert layer.receive_request(ack_for(tx), UDP, 1.0) == []
    assert layer.receive_request(tx.request, UDP, 1.0) == []
    expected: object = [(pytest.approx(5.7), TransactionTerminated(tx))]
    assert run_until(layer, 100.0) == expected


def test_ack_in_proceeding_is_absorbed() -> None:
    layer, tx = start()
    assert layer.receive_request(ack_for(tx), UDP, 0.1) == []
    assert tx.state is State.PROCEEDING


def test_2xx_accepted_retransmitted_until_ack() -> None:
    layer, tx = start()
    tx.context = "call-7"
    actions = layer.send_response(tx, make_response(tx.request, 200), 0.0)
    assert statuses(actions) == [200]
    assert tx.state is State.ACCEPTED
    assert layer.pending_acks == 1
    fired = run_until(layer, 8.0)
    assert [t for t, a in fired if isinstance(a, Transmit)] == [0.5, 1.5, 3.5, 7.5]
    assert all(a.data == actions[0].data for _, a in fired)  # type: ignore[union-attr]
    # INVITE retransmissions are absorbed in Accepted (RFC 6026 §7.1)
    assert layer.receive_request(tx.request, UDP, 8.1) == []
    ack = ack_for(tx, branch="z9hG4bK-ack")  # the 2xx ACK is a new transaction
    assert layer.receive_request(ack, UDP, 8.2) == [RequestReceived(ack, UDP, None)]
    assert layer.pending_acks == 0
    fired = run_until(layer, 100.0)
    assert fired == [(32.0, TransactionTerminated(tx))]  # Timer L, no more 2xx
    assert len(layer) == 0


def test_ack_matching_accepted_transaction_goes_to_core() -> None:
    layer, tx = start()
    layer.send_response(tx, make_response(tx.request, 200), 0.0)
    ack = ack_for(tx)  # same branch as the INVITE (not RFC 3261, but seen)
    assert layer.receive_request(ack, UDP, 0.2) == [RequestReceived(ack, UDP, None)]
    assert tx.state is State.ACCEPTED
    assert layer.pending_acks == 0


def test_2xx_never_acked_gives_ack_timeout() -> None:
    layer, tx = start()
    tx.context = "call-7"
    layer.send_response(tx, make_response(tx.request, 200), 0.0)
    fired = run_until(layer, 100.0)
    times = [t for t, a in fired if isinstance(a, Transmit)]
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    tail = [a for t, a in fired if t == 32.0]
    assert AckTimeout("call-1@example.com", 1, "call-7") in tail
    assert TransactionTerminated(tx) in tail
    assert len(layer) == 0
    assert layer.pending_acks == 0
    assert layer.get_timer() is None


def test_second_2xx_from_core_is_sent_and_restarts_retransmission() -> None:
    layer, tx = start()
    layer.send_response(tx, make_response(tx.request, 200), 0.0)
    second = make_response(tx.request, 200)
    second.headers.add("X-Again", "1")
    actions = layer.send_response(tx, second, 2.0)
    assert len(only(actions, Transmit)) == 1
    assert layer.pending_acks == 1
    fired = run_until(layer, 2.5)
    assert [a.data for _, a in fired] == [actions[0].data]  # type: ignore[union-attr]


def test_late_responses_from_core_are_dropped() -> None:
    layer, tx = start()
    layer.send_response(tx, make_response(tx.request, 200), 0.0)
    assert layer.send_response(tx, make_response(tx.request, 487), 0.1) == []
    assert layer.send_response(tx, make_response(tx.request, 180), 0.1) == []
    layer2, tx2 = start()
    layer2.send_response(tx2, make_response(tx2.request, 487), 0.0)
    assert layer2.send_response(tx2, make_response(tx2.request, 200), 0.1) == []
    assert layer2.pending_acks == 0


def test_reliable_no_timer_g_and_timer_i_zero() -> None:
    layer, tx = start(TCP)
    layer.send_response(tx, make_response(tx.request, 486), 0.0)
    assert layer.get_timer() == 32.0  # Timer H only
    actions = layer.receive_request(ack_for(tx), TCP, 0.1)
    assert actions == [TransactionTerminated(tx)]
    assert len(layer) == 0


def test_reliable_timer_h() -> None:
    layer, tx = start(TCP)
    layer.send_response(tx, make_response(tx.request, 486), 0.0)
    assert run_until(layer, 100.0) == [(32.0, TransactionTerminated(tx))]


def test_reliable_2xx_not_retransmitted_but_ack_awaited() -> None:
    layer, tx = start(TCP)
    layer.send_response(tx, make_response(tx.request, 200), 0.0)
    fired = run_until(layer, 100.0)
    assert not only([a for _, a in fired], Transmit)
    assert sorted(type(a).__name__ for _, a in fired) == ["AckTimeout", "TransactionTerminated"]


def test_responses_go_to_source_on_tcp() -> None:
    layer, tx = start(TCP)
    assert tx.target == TCP
    actions = layer.send_response(tx, make_response(tx.request, 180), 0.0)
    assert only(actions, Transmit)[0].target == TCP
