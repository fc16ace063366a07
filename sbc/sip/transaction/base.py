"""What the four transaction machines (and the 2xx retransmitter) share.

Theory of operation. A machine is an enum :class:`State` plus one transition
table ``TRANSITIONS: (State, Input) -> (State, (Act, ...))``. Feeding it an
:class:`Input` looks up the edge, moves to the new state and performs the
listed :class:`Act` in order; the acts produce the layer's actions
(:mod:`sbc.sip.transaction.events`). An input with no edge is absorbed: for
network input that is RFC behaviour (a retransmission a state ignores); for
TU input it means the response came too late (e.g. a 487 after the 200 went
out) and is dropped.

Timers are deadlines kept per machine (``{Input.TIMER_X: deadline}``):
:meth:`Machine.get_timer` is the earliest, :meth:`Machine.handle_timer` fires
the due ones in deadline order. A timer whose duration is 0 (D, I, J, K on
reliable transports, RFC 3261 §17) fires within the same step. Retransmission
timers (A, E, G and the §13.3.1.4 2xx timer) are never started on reliable
transports. Entering Terminated clears every timer.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Mapping
from typing import ClassVar

from sbc.sip.message import Request, Response
from sbc.sip.target import Target
from sbc.sip.transaction.config import TimerConfig
from sbc.sip.transaction.events import Action, TransactionTimeout, Transmit, TransportFailure
from sbc.sip.via import DEFAULT_PORTS


class State(enum.Enum):
    """Transaction states of RFC 3261 §17 and RFC 6026 §7 (Accepted)."""

    CALLING = "Calling"  # client INVITE, §17.1.1.2
    TRYING = "Trying"  # non-INVITE, §17.1.2.2 / §17.2.2
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"  # server INVITE, §17.2.1
    ACCEPTED = "Accepted"  # INVITE after 2xx, RFC 6026 §7.1 / §7.2
    TERMINATED = "Terminated"


#: States that only absorb retransmissions until a timer ends them.
_RESTING = frozenset({State.COMPLETED, State.CONFIRMED, State.ACCEPTED, State.TERMINATED})


class Input(enum.Enum):
    """What drives a machine: messages, TU requests and timers (RFC names)."""

    REQUEST = "request"  # server: a retransmission of the request
    ACK = "ACK"  # server INVITE: ACK matching the transaction
    PROVISIONAL = "1xx"  # client: received; server: passed by the TU
    FINAL_2XX = "2xx"
    FINAL_NON_2XX = "300-699"
    TIMER_A = "A"
    TIMER_B = "B"
    TIMER_D = "D"
    TIMER_E = "E"
    TIMER_F = "F"
    TIMER_G = "G"
    TIMER_H = "H"
    TIMER_I = "I"
    TIMER_J = "J"
    TIMER_K = "K"
    TIMER_L = "L"
    TIMER_M = "M"
    TRANSPORT_ERROR = "transport error"
    CANCEL_SENT = "CANCEL sent"  # §9.1: the TU cancelled this client INVITE
    TIMER_CANCEL = "64*T1 after CANCEL"  # §9.1
    TIMER_2XX = "2xx retransmit"  # §13.3.1.4: T1, 2*T1, ... capped at T2
    TIMER_ACK = "2xx ACK wait"  # §13.3.1.4: 64*T1 without ACK


class Act(enum.Enum):
    """What an edge does, in order."""

    CANCEL_TIMERS = enum.auto()
    START_A = enum.auto()
    START_B = enum.auto()
    START_D = enum.auto()
    START_E = enum.auto()
    START_F = enum.auto()
    START_G = enum.auto()
    START_H = enum.auto()
    START_I = enum.auto()
    START_J = enum.auto()
    START_K = enum.auto()
    START_L = enum.auto()
    START_M = enum.auto()
    START_CANCEL = enum.auto()
    START_2XX = enum.auto()
    START_ACK = enum.auto()
    BACKOFF = enum.auto()  # re-arm the retransmit timer that fired, interval doubled
    REARM_T2 = enum.auto()  # re-arm Timer E at T2 (§17.1.2.2, Proceeding)
    SEND_REQUEST = enum.auto()
    SEND_ACK = enum.auto()
    SEND_RESPONSE = enum.auto()
    RESEND_RESPONSE = enum.auto()
    REPORT_RESPONSE = enum.auto()
    REPORT_STRAY = enum.auto()
    REPORT_TIMEOUT = enum.auto()
    REPORT_TRANSPORT_FAILURE = enum.auto()
    REPORT_ACK_TIMEOUT = enum.auto()


Table = Mapping[tuple[State, Input], tuple[State, tuple[Act, ...]]]

_STARTS = {
    Act.START_A: Input.TIMER_A,
    Act.START_B: Input.TIMER_B,
    Act.START_D: Input.TIMER_D,
    Act.START_E: Input.TIMER_E,
    Act.START_F: Input.TIMER_F,
    Act.START_G: Input.TIMER_G,
    Act.START_H: Input.TIMER_H,
    Act.START_I: Input.TIMER_I,
    Act.START_J: Input.TIMER_J,
    Act.START_K: Input.TIMER_K,
    Act.START_L: Input.TIMER_L,
    Act.START_M: Input.TIMER_M,
    Act.START_CANCEL: Input.TIMER_CANCEL,
    Act.START_2XX: Input.TIMER_2XX,
    Act.START_ACK: Input.TIMER_ACK,
}
#: Retransmission timers: UDP only; BACKOFF caps all but Timer A at T2.
_RETRANSMIT = frozenset((Input.TIMER_A, Input.TIMER_E, Input.TIMER_G, Input.TIMER_2XX))


def timer_duration(config: TimerConfig, timer: Input, reliable: bool) -> float | None:
    """Initial duration of ``timer``; None when it does not run on this transport."""
    if timer in _RETRANSMIT:
        return None if reliable else config.t1
    match timer:
        case Input.TIMER_D:
            return config.timer_d(reliable)
        case Input.TIMER_I:
            return config.timer_i(reliable)
        case Input.TIMER_J:
            return config.timer_j(reliable)
        case Input.TIMER_K:
            return config.timer_k(reliable)
        case _:  # B, F, H, L, M, CANCEL, ACK: 64*T1 on every transport
            return 64 * config.t1


class Machine:
    """A table-driven state machine with deadline timers (see module doc)."""

    __slots__ = ("_immediate", "_interval", "_timers", "config", "heap_deadline", "state")

    TRANSITIONS: ClassVar[Table]
    #: The timer BACKOFF re-arms (A, E, G or the 2xx timer).
    RETRANSMIT_TIMER: ClassVar[Input] = Input.TIMER_E

    def __init__(self, state: State, config: TimerConfig) -> None:
        self.state = state
        self.config = config
        #: The deadline under which the layer's heap holds this machine.
        self.heap_deadline: float | None = None
        self._timers: dict[Input, float] = {}
        self._interval = config.t1
        self._immediate: Input | None = None

    @property
    def reliable(self) -> bool:
        raise NotImplementedError

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def get_timer(self) -> float | None:
        """The next deadline, or None when no timer runs."""
        timers = self._timers
        if not timers:
            return None
        return min(timers.values())

    def handle_timer(self, now: float) -> list[Action]:
        """Fire every timer due at ``now``, earliest first."""
        out: list[Action] = []
        timers = self._timers
        while timers:
            timer = min(timers, key=timers.__getitem__)
            if timers[timer] > now:
                break
            del timers[timer]
            out.extend(self._step(timer, now))
        return out

    def _step(
        self, event: Input, now: float, message: Request | Response | None = None
    ) -> list[Action]:
        edge = self.TRANSITIONS.get((self.state, event))
        if edge is None:
            return []
        self.state, acts = edge
        out: list[Action] = []
        for act in acts:
            if not self._perform_timer(act, now):
                self._perform(act, now, message, out)
        if self.state in _RESTING:
            self._rest()
        if self.state is State.TERMINATED:
            self._timers.clear()
        elif self._immediate is not None:
            timer, self._immediate = self._immediate, None
            out.extend(self._step(timer, now))
        return out

    def _rest(self) -> None:
        """Past the active phase: keep raw messages only (see forget_parsed)."""

    def _perform_timer(self, act: Act, now: float) -> bool:
        timer = _STARTS.get(act)
        if timer is not None:
            duration = timer_duration(self.config, timer, self.reliable)
            if duration is not None:
                if timer is self.RETRANSMIT_TIMER:
                    self._interval = duration
                self._arm(timer, duration, now)
            return True
        if act is Act.CANCEL_TIMERS:
            self._timers.clear()
        elif act is Act.BACKOFF:
            self._backoff(now)
        elif act is Act.REARM_T2:
            self._interval = self.config.t2
            self._arm(Input.TIMER_E, self.config.t2, now)
        else:
            return False
        return True

    def _arm(self, timer: Input, duration: float, now: float) -> None:
        if duration <= 0:
            self._immediate = timer
        else:
            self._timers[timer] = now + duration

    def _backoff(self, now: float) -> None:
        """§17.1.1.2: A doubles; §17.1.2.2 / §17.2.1 / §13.3.1.4: E, G, 2xx cap at T2."""
        timer = self.RETRANSMIT_TIMER
        interval = self._interval * 2
        if timer is not Input.TIMER_A:
            interval = min(interval, self.config.t2)
        self._interval = interval
        self._arm(timer, interval, now)

    def _perform(
        self, act: Act, now: float, message: Request | Response | None, out: list[Action]
    ) -> None:
        raise NotImplementedError


class Transaction(Machine):
    """What both sides share: the request, the last response, the core's slot."""

    __slots__ = ("_data", "context", "key", "last_response", "request")

    def __init__(self, key: Hashable, request: Request, state: State, config: TimerConfig) -> None:
        super().__init__(state, config)
        self.key = key
        self.request = request
        self.context: object | None = None  # free for the transaction user (the core)
        self.last_response: Response | None = None
        self._data = b""  # bytes that retransmissions re-send

    def _rest(self) -> None:
        self.request.forget_parsed()
        if self.last_response is not None:
            self.last_response.forget_parsed()


class ClientTransaction(Transaction):
    """Base of the client machines (§17.1): sends ``request`` to ``target``."""

    __slots__ = ("_source", "target")

    is_invite: ClassVar[bool] = False

    def __init__(
        self,
        key: Hashable,
        request: Request,
        target: Target,
        state: State,
        config: TimerConfig,
        *,
        wire: bytes | None = None,
    ) -> None:
        super().__init__(key, request, state, config)
        self.target = target
        # Retransmissions re-send these bytes: ``wire`` when the caller serialized
        # the request already (the core's leak guard checked exactly these).
        self._data = wire if wire is not None else request.serialize()
        self._source = target  # where the response being handled came from

    @property
    def reliable(self) -> bool:
        return self.target.reliable

    def receive_response(self, response: Response, source: Target, now: float) -> list[Action]:
        status = response.status
        if status < 200:
            event = Input.PROVISIONAL
        elif status < 300:
            event = Input.FINAL_2XX
        else:
            event = Input.FINAL_NON_2XX
        self._source = source
        return self._step(event, now, response)

    def transport_error(self, now: float) -> list[Action]:
        return self._step(Input.TRANSPORT_ERROR, now)

    @property
    def response_source(self) -> Target:
        """Where the response being reported came from (its observed source)."""
        return self._source

    def _perform_shared(self, act: Act, out: list[Action]) -> bool:
        """The actions both client machines perform alike; False if not one."""
        if act is Act.SEND_REQUEST:
            out.append(Transmit(self._data, self.target))
        elif act is Act.REPORT_TIMEOUT:
            out.append(TransactionTimeout(self))
        elif act is Act.REPORT_TRANSPORT_FAILURE:
            out.append(TransportFailure(self))
        else:
            return False
        return True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request.method} {self.state.value} {self.key!r}>"


class ServerTransaction(Transaction):
    """Base of the server machines (§17.2): answers ``request`` from ``source``.

    ``target`` is where responses go (§18.2.2, see :func:`response_target`).
    """

    __slots__ = ("_wire", "source", "target")

    is_invite: ClassVar[bool] = False

    def __init__(
        self, key: Hashable, request: Request, source: Target, state: State, config: TimerConfig
    ) -> None:
        super().__init__(key, request, state, config)
        self.source = source
        self.target = response_target(request, source)
        self._wire: bytes | None = None  # the response's bytes, if serialized already

    @property
    def reliable(self) -> bool:
        return self.target.reliable

    @property
    def last_data(self) -> bytes:
        """Wire bytes of the last response sent."""
        return self._data

    def receive_request(self, now: float) -> list[Action]:
        """A retransmission of the request (§17.2.1, §17.2.2)."""
        return self._step(Input.REQUEST, now)

    def send_response(
        self, response: Response, now: float, wire: bytes | None = None
    ) -> list[Action]:
        """Pass ``response`` down; ``wire`` is its serialization when already made."""
        status = response.status
        if status < 200:
            event = Input.PROVISIONAL
        elif status < 300:
            event = Input.FINAL_2XX
        else:
            event = Input.FINAL_NON_2XX
        self._wire = wire
        try:
            return self._step(event, now, response)
        finally:
            self._wire = None

    def _perform(
        self, act: Act, now: float, message: Request | Response | None, out: list[Action]
    ) -> None:
        if act is Act.SEND_RESPONSE:
            if not isinstance(message, Response):  # pragma: no cover
                raise TypeError(message)
            self.last_response = message
            self._data = self._wire if self._wire is not None else message.serialize()
            out.append(Transmit(self._data, self.target))
        elif act is Act.RESEND_RESPONSE:
            if self._data:
                out.append(Transmit(self._data, self.target))
        else:  # pragma: no cover - a table names an act this machine lacks
            raise AssertionError(act)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request.method} {self.state.value} {self.key!r}>"


def response_target(request: Request, source: Target) -> Target:
    """Where responses to ``request`` go (RFC 3261 §18.2.2, RFC 3581 §4).

    Reliable transports answer on the connection the request came in on. Over
    UDP the host is always the packet's source address: that is what
    ``received`` holds whenever it differs from sent-by (§18.2.1), and a
    ``received`` written by the sender itself is never trusted (reflection).
    The port is the source port when the Via has ``rport``, else the sent-by
    port (default 5060). ``maddr`` is ignored at the edge.
    """
    if source.transport != "udp":
        return source
    via = request.top_via
    if "rport" in via.params:
        return source
    port = via.port or DEFAULT_PORTS.get(via.transport.lower(), 5060)
    if port == source.port:
        return source
    return Target(source.interface, source.transport, source.host, port, source.connection)
