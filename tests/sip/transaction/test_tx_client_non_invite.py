"""Non-INVITE client transaction (RFC 3261 §17.1.2) through the layer."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from txhelpers import PEER, PEER_TCP, kinds, make_request, make_response, only, run_until

from sbc.sip.target import Target
from sbc.sip.transaction import (
    ClientNonInviteTransaction,
    ResponseReceived,
    State,
    TimerConfig,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    Transmit,
    TransportFailure,
)


def start(
    target: Target = PEER, method: str = "OPTIONS"
) -> tuple[TransactionLayer, ClientNonInviteTransaction]:
    layer = TransactionLayer()
    tx, actions = layer.send_request(make_request(method), target, 0.0)
    assert isinstance(tx, ClientNonInviteTransaction)
    assert not tx.is_invite
    assert tx.state is State.TRYING
    assert len(only(actions, Transmit)) == 1
    return layer, tx


def retransmit_times(fired: Sequence[tuple[float, object]]) -> list[float]:
    return [t for t, a in fired if isinstance(a, Transmit)]


def test_timer_e_doubles_up_to_t2_then_timer_f() -> None:
    layer, _tx = start()
    fired = run_until(layer, 31.99)
    # intervals 0.5, 1, 2, 4, 4, 4, ...
    assert retransmit_times(fired) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert kinds(layer.handle_timer(32.0)) == ["TransactionTimeout", "TransactionTerminated"]
    assert len(layer) == 0
    assert layer.get_timer() is None


def test_provisional_moves_to_proceeding_and_timer_e_runs_at_t2() -> None:
    layer, tx = start()
    run_until(layer, 0.5)  # one retransmission: next E at 1.5
    trying = make_response(tx.request, 100, to_tag=None)
    assert layer.receive_response(trying, PEER, 0.6) == [ResponseReceived(trying, tx)]
    assert tx.state is State.PROCEEDING
    fired = run_until(layer, 20.0)
    assert retransmit_times(fired) == [1.5, 5.5, 9.5, 13.5, 17.5]
    timeout = run_until(layer, 40.0)
    assert TransactionTimeout(tx) in [a for _, a in timeout]


@pytest.mark.parametrize("status", [200, 404])
@pytest.mark.parametrize("provisional_first", [False, True])
def test_final_completes_then_timer_k(status: int, provisional_first: bool) -> None:
    layer, tx = start()
    if provisional_first:
        layer.receive_response(make_response(tx.request, 180), PEER, 0.1)
    final = make_response(tx.request, status)
    assert layer.receive_response(final, PEER, 0.2) == [ResponseReceived(final, tx)]
    assert tx.state is State.COMPLETED
    assert tx.last_response is final
    assert layer.get_timer() == pytest.approx(5.2)  # Timer K = T4, E and F stopped
    assert layer.receive_response(make_response(tx.request, status), PEER, 1.0) == []
    assert layer.receive_response(make_response(tx.request, 180), PEER, 1.0) == []
    fired = run_until(layer, 100.0)
    expected: object = [(pytest.approx(5.2), TransactionTerminated(tx))]
    assert fired == expected
    assert len(layer) == 0


def test_transport_error_in_trying_and_proceeding() -> None:
    layer, tx = start()
    assert layer.transport_error(PEER, 0.1) == [TransportFailure(tx), TransactionTerminated(tx)]
    layer, tx = start()
    layer.receive_response(make_response(tx.request, 100, to_tag=None), PEER, 0.1)
    assert kinds(layer.transport_error(PEER, 0.2)) == ["TransportFailure", "TransactionTerminated"]


def test_transport_error_in_completed_is_ignored() -> None:
    layer, tx = start()
    layer.receive_response(make_response(tx.request, 200), PEER, 0.1)
    assert layer.transport_error(PEER, 0.2) == []
    assert tx.state is State.COMPLETED


def test_reliable_no_timer_e_and_timer_k_zero() -> None:
    layer, tx = start(PEER_TCP)
    assert layer.get_timer() == 32.0  # Timer F only
    final = make_response(tx.request, 200)
    actions = layer.receive_response(final, PEER_TCP, 0.5)
    assert actions == [ResponseReceived(final, tx), TransactionTerminated(tx)]
    assert len(layer) == 0


def test_reliable_timer_f() -> None:
    layer, tx = start(PEER_TCP)
    assert run_until(layer, 100.0) == [
        (32.0, TransactionTimeout(tx)),
        (32.0, TransactionTerminated(tx)),
    ]


def test_small_t1_scales_every_timer() -> None:
    layer = TransactionLayer(TimerConfig(t1=0.1, t2=0.4, t4=1.0))
    _tx, _ = layer.send_request(make_request("BYE"), PEER, 0.0)
    fired = run_until(layer, 6.39)
    assert retransmit_times(fired)[:5] == pytest.approx([0.1, 0.3, 0.7, 1.1, 1.5])
    assert kinds(layer.handle_timer(6.4)) == ["TransactionTimeout", "TransactionTerminated"]
