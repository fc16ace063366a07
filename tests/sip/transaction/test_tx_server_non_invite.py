"""Non-INVITE server transaction (RFC 3261 §17.2.2) through the layer."""

from __future__ import annotations

import pytest
from txhelpers import TCP, UDP, kinds, make_request, make_response, run_until, statuses

from sbc.sip.target import Target
from sbc.sip.transaction import (
    RequestReceived,
    ServerNonInviteTransaction,
    ServerTransaction,
    State,
    TransactionLayer,
    TransactionTerminated,
)


def start(source: Target = UDP) -> tuple[TransactionLayer, ServerTransaction]:
    layer = TransactionLayer()
    bye = make_request("BYE", transport=source.transport.upper(), port=source.port)
    actions = layer.receive_request(bye, source, 0.0)
    assert kinds(actions) == ["RequestReceived"]  # no 100 for non-INVITE
    received = actions[0]
    assert isinstance(received, RequestReceived)
    tx = received.transaction
    assert isinstance(tx, ServerNonInviteTransaction)
    assert tx.state is State.TRYING
    assert not tx.is_invite
    return layer, tx


def test_retransmission_in_trying_is_absorbed() -> None:
    layer, _tx = start()
    assert layer.receive_request(make_request("BYE"), UDP, 0.5) == []
    assert len(layer) == 1


def test_provisional_then_retransmission_gets_it_again() -> None:
    layer, tx = start()
    assert statuses(layer.send_response(tx, make_response(tx.request, 100, None), 0.1)) == [100]
    assert tx.state is State.PROCEEDING
    assert statuses(layer.receive_request(make_request("BYE"), UDP, 0.5)) == [100]
    assert statuses(layer.send_response(tx, make_response(tx.request, 180), 0.6)) == [180]


@pytest.mark.parametrize("status", [200, 481])
@pytest.mark.parametrize("provisional_first", [False, True])
def test_final_then_retransmissions_then_timer_j(status: int, provisional_first: bool) -> None:
    layer, tx = start()
    if provisional_first:
        layer.send_response(tx, make_response(tx.request, 100, None), 0.0)
    assert statuses(layer.send_response(tx, make_response(tx.request, status), 1.0)) == [status]
    assert tx.state is State.COMPLETED
    assert layer.get_timer() == 33.0  # Timer J = 64*T1, no retransmission timer
    assert statuses(layer.receive_request(make_request("BYE"), UDP, 2.0)) == [status]
    assert layer.send_response(tx, make_response(tx.request, 500), 2.0) == []  # too late
    assert run_until(layer, 100.0) == [(33.0, TransactionTerminated(tx))]
    assert len(layer) == 0


def test_reliable_timer_j_is_zero() -> None:
    layer, tx = start(TCP)
    actions = layer.send_response(tx, make_response(tx.request, 200), 0.0)
    assert kinds(actions) == ["Transmit", "TransactionTerminated"]
    assert actions[0].target == TCP  # type: ignore[union-attr]
    assert len(layer) == 0
    assert layer.get_timer() is None
    # a retransmission after that is a new request for the core
    again = layer.receive_request(make_request("BYE", transport="TCP", port=5070), TCP, 0.1)
    assert kinds(again) == ["RequestReceived"]
