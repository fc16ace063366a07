"""The transaction layer: matches messages to transactions and drives them.

Three things drive it, all sans-IO (RFC 3261 §17; RFC 6026):

- messages from the network: :meth:`TransactionLayer.receive_request` and
  :meth:`~TransactionLayer.receive_response` (matching of §17.2.3, §17.1.3);
- calls from the core: :meth:`~TransactionLayer.send_request`,
  :meth:`~TransactionLayer.send_response`, :meth:`~TransactionLayer.transmit`,
  :meth:`~TransactionLayer.transport_error`;
- the clock: :meth:`~TransactionLayer.get_timer` is the earliest deadline
  over all machines and :meth:`~TransactionLayer.handle_timer` fires what is
  due.

Each returns the :mod:`actions <sbc.sip.transaction.events>` to carry out,
in order. Every transaction that reaches Terminated leaves the layer and is
reported once with :class:`TransactionTerminated`.

Matching. Server transactions (§17.2.3) are keyed by (branch, sent-by,
method) when the branch has the magic cookie, else (RFC 2543) by Call-ID,
From tag, CSeq number, sent-by, branch and method. ACK uses method INVITE;
a CANCEL has its own transaction and finds the INVITE it cancels by the
same key with method INVITE. Client transactions (§17.1.3) are keyed by
(top Via branch, CSeq method).

The core's 2xx to INVITE is re-sent until ACKed (§13.3.1.4) by an
:class:`~sbc.sip.transaction.ack2xx.Ack2xxWait` keyed by (Call-ID, CSeq
number), which any ACK for that pair stops.

Timers live in one heap of (deadline, seq, machine); a machine records the
deadline it is filed under (``heap_deadline``) and entries that no longer
match are skipped (lazy deletion). The heap is rebuilt when stale entries
outnumber live ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterator
from heapq import heapify, heappop, heappush

from sbc.sip.errors import ParseError
from sbc.sip.ids import new_tag
from sbc.sip.message import Request, Response, build_response
from sbc.sip.target import Target
from sbc.sip.transaction.ack2xx import Ack2xxWait
from sbc.sip.transaction.base import (
    ClientTransaction,
    Machine,
    ServerTransaction,
    State,
)
from sbc.sip.transaction.client_invite import ClientInviteTransaction
from sbc.sip.transaction.client_non_invite import ClientNonInviteTransaction
from sbc.sip.transaction.config import TimerConfig
from sbc.sip.transaction.events import (
    Action,
    CancelReceived,
    RequestReceived,
    StrayResponse,
    TransactionTerminated,
    Transmit,
)
from sbc.sip.transaction.server_invite import ServerInviteTransaction
from sbc.sip.transaction.server_non_invite import ServerNonInviteTransaction
from sbc.sip.via import DEFAULT_PORTS, MAGIC_COOKIE

DEFAULT_CONFIG = TimerConfig()
_COMPACT_SLACK = 1024

Address = tuple[str, str, int]


def server_key(request: Request, method: str) -> Hashable:
    """The server transaction ``request`` belongs to, as if its method were ``method``."""
    via = request.top_via
    branch = via.branch
    sent_by = (via.host.lower(), via.port or DEFAULT_PORTS.get(via.transport.lower(), 5060))
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return branch, sent_by, method
    # RFC 2543 peers (§17.2.3, simplified): the To tag is left out so that
    # an ACK (which has one) matches its INVITE (which has none).
    return request.call_id, request.from_.tag, request.cseq.seq, sent_by, branch, method


def client_key(branch: str, method: str) -> Hashable:
    """§17.1.3: the top Via branch and the CSeq method."""
    return branch, method


def _address(target: Target) -> Address:
    return target.transport, target.host, target.port


class TransactionLayer:
    """All client and server transactions of one SIP stack (see module doc)."""

    __slots__ = ("_acks", "_by_target", "_clients", "_heap", "_seq", "_servers", "config")

    def __init__(self, config: TimerConfig = DEFAULT_CONFIG) -> None:
        self.config = config
        self._clients: dict[Hashable, ClientTransaction] = {}
        self._servers: dict[Hashable, ServerTransaction] = {}
        self._acks: dict[tuple[str, int], Ack2xxWait] = {}
        self._by_target: dict[Address, set[ClientTransaction]] = {}
        self._heap: list[tuple[float, int, Machine]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        """Live transactions (terminated ones have been removed)."""
        return len(self._clients) + len(self._servers)

    @property
    def pending_acks(self) -> int:
        """2xx responses still re-sent while waiting for their ACK."""
        return len(self._acks)

    def known(self, request: Request) -> bool:
        """A retransmission of a request a transaction already has (or, for an
        ACK, one that a transaction or a 2xx awaiting its ACK will absorb)."""
        if request.method == "ACK":
            return (
                server_key(request, "INVITE") in self._servers
                or (request.call_id, request.cseq.seq) in self._acks
            )
        return server_key(request, request.method) in self._servers

    def server_transaction(self, request: Request) -> ServerTransaction | None:
        """The server transaction ``request`` created or belongs to (an ACK's:
        its INVITE's), if any; None too when its Via cannot even be read."""
        method = "INVITE" if request.method == "ACK" else request.method
        try:
            return self._servers.get(server_key(request, method))
        except ParseError:
            return None

    # --- network input ----------------------------------------------------

    def receive_request(self, request: Request, source: Target, now: float) -> list[Action]:
        method = request.method
        if method == "ACK":
            return self._receive_ack(request, source, now)
        key = server_key(request, method)
        tx = self._servers.get(key)
        if tx is not None:  # a retransmission (§17.2.1, §17.2.2)
            return self._after(tx, tx.receive_request(now))
        if method == "CANCEL":
            return self._receive_cancel(request, source, key, now)
        out: list[Action]
        if method == "INVITE":
            tx = self._servers[key] = ServerInviteTransaction(key, request, source, self.config)
            out = self._after(tx, tx.send_response(build_response(request, 100), now))
        else:
            tx = self._servers[key] = ServerNonInviteTransaction(key, request, source, self.config)
            out = []
        out.append(RequestReceived(request, source, tx))
        return out

    def receive_response(self, response: Response, source: Target, now: float) -> list[Action]:
        branch = response.top_via.branch
        tx = self._clients.get(client_key(branch, response.cseq.method)) if branch else None
        if tx is None:
            return [StrayResponse(response, source)]
        return self._after(tx, tx.receive_response(response, source, now))

    def _receive_ack(self, request: Request, source: Target, now: float) -> list[Action]:
        tx = self._servers.get(server_key(request, "INVITE"))
        if isinstance(tx, ServerInviteTransaction):
            if tx.state is not State.ACCEPTED:  # ACK for a 300-699: absorbed
                return self._after(tx, tx.receive_ack(now))
            tx.receive_ack(now)
        out: list[Action] = []
        wait = self._acks.get((request.call_id, request.cseq.seq))
        if wait is not None:
            out.extend(self._after(wait, wait.receive_ack(now)))
        out.append(RequestReceived(request, source, None))
        return out

    def _receive_cancel(
        self, request: Request, source: Target, key: Hashable, now: float
    ) -> list[Action]:
        """§9.2: the CANCEL is answered here; the core answers the INVITE with 487."""
        invite = self._servers.get(server_key(request, "INVITE"))
        tx = self._servers[key] = ServerNonInviteTransaction(key, request, source, self.config)
        if invite is None or not invite.is_invite:
            return self.send_response(tx, build_response(request, 481, to_tag=new_tag()), now)
        tag = _to_tag(invite.last_response) or new_tag()
        out = self.send_response(tx, build_response(request, 200, to_tag=tag), now)
        if invite.state is State.PROCEEDING:
            out.append(CancelReceived(request, source, invite))
        return out

    # --- core input -------------------------------------------------------

    def send_request(
        self, request: Request, target: Target, now: float, wire: bytes | None = None
    ) -> tuple[ClientTransaction, list[Action]]:
        """Start a client transaction; ACK has none (send it with :meth:`transmit`).
        ``wire``: the request's bytes when the caller serialized it already."""
        method = request.method
        if method == "ACK":
            raise ValueError("ACK has no client transaction; use transmit()")
        branch = request.top_via.branch
        if not branch:
            raise ValueError("the request's top Via has no branch")
        key = client_key(branch, method)
        if key in self._clients:
            raise ValueError(f"a client transaction {key!r} already exists")
        tx: ClientInviteTransaction | ClientNonInviteTransaction
        if method == "INVITE":
            tx = ClientInviteTransaction(key, request, target, self.config, wire)
        else:
            tx = ClientNonInviteTransaction(key, request, target, self.config, wire)
        self._clients[key] = tx
        self._by_target.setdefault(_address(target), set()).add(tx)
        out = tx.start(now)
        self._schedule(tx)
        if method == "CANCEL":
            invite = self._clients.get(client_key(branch, "INVITE"))
            if isinstance(invite, ClientInviteTransaction):
                out.extend(self._after(invite, invite.cancel_sent(now)))
        return tx, out

    def send_response(
        self,
        transaction: ServerTransaction,
        response: Response,
        now: float,
        wire: bytes | None = None,
    ) -> list[Action]:
        """Send through ``transaction``; a 2xx to INVITE is re-sent until ACKed.
        ``wire``: the response's bytes when the caller serialized it already."""
        out = transaction.send_response(response, now, wire)
        if out and transaction.is_invite and 200 <= response.status < 300:
            self._wait_for_ack(transaction, now)
        return self._after(transaction, out)

    def transmit(
        self, message: Request | Response, target: Target, wire: bytes | None = None
    ) -> list[Action]:
        """Send statelessly (ACK for 2xx, re-ACKs)."""
        return [Transmit(wire if wire is not None else message.serialize(), target)]

    def transport_error(self, target: Target, now: float) -> list[Action]:
        """Fail every client transaction sending to ``target`` (§17.1.4, §8.1.3.1)."""
        txs = self._by_target.get(_address(target))
        if not txs:
            return []
        out: list[Action] = []
        for tx in list(txs):
            out.extend(self._after(tx, tx.transport_error(now)))
        return out

    def fail(self, tx: ClientTransaction, now: float) -> list[Action]:
        """Fail one client transaction as a transport error would (§17.1.4):
        its request was never sent (the core's leak guard withheld it)."""
        return self._after(tx, tx.transport_error(now))

    # --- clock ------------------------------------------------------------

    def get_timer(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, _, machine = heap[0]
            if machine.heap_deadline == deadline:
                return deadline
            heappop(heap)
        return None

    def handle_timer(self, now: float) -> list[Action]:
        out: list[Action] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, machine = heappop(heap)
            if machine.heap_deadline != deadline:
                continue  # stale entry
            machine.heap_deadline = None
            out.extend(self._after(machine, machine.handle_timer(now)))
        return out

    # --- bookkeeping ------------------------------------------------------

    def _wait_for_ack(self, transaction: ServerTransaction, now: float) -> None:
        wait = Ack2xxWait(transaction, self.config)
        old = self._acks.get(wait.key)
        if old is not None:
            old.stop()
            old.heap_deadline = None
        self._acks[wait.key] = wait
        wait.start(now)
        self._schedule(wait)

    def _after(self, machine: Machine, out: list[Action]) -> list[Action]:
        """File the machine's next deadline, or remove it once terminated."""
        if machine.state is not State.TERMINATED:
            self._schedule(machine)
            return out
        machine.heap_deadline = None
        if isinstance(machine, ServerTransaction):
            if self._servers.get(machine.key) is machine:
                del self._servers[machine.key]
                out.append(TransactionTerminated(machine))
        elif isinstance(machine, ClientTransaction):
            if self._clients.get(machine.key) is machine:
                del self._clients[machine.key]
                self._forget_target(machine)
                out.append(TransactionTerminated(machine))
        elif isinstance(machine, Ack2xxWait) and self._acks.get(machine.key) is machine:
            del self._acks[machine.key]
        return out

    def _forget_target(self, tx: ClientTransaction) -> None:
        address = _address(tx.target)
        txs = self._by_target.get(address)
        if txs is not None:
            txs.discard(tx)
            if not txs:
                del self._by_target[address]

    def _schedule(self, machine: Machine) -> None:
        deadline = machine.get_timer()
        if deadline == machine.heap_deadline:
            return
        machine.heap_deadline = deadline
        if deadline is None:
            return
        heap = self._heap
        heappush(heap, (deadline, next(self._seq), machine))
        if len(heap) > 2 * (len(self) + len(self._acks)) + _COMPACT_SLACK:
            self._compact()

    def _compact(self) -> None:
        """Drop stale heap entries: keep one per machine with a deadline."""
        seq = self._seq
        self._heap = [
            (m.heap_deadline, next(seq), m) for m in self._machines() if m.heap_deadline is not None
        ]
        heapify(self._heap)

    def _machines(self) -> Iterator[Machine]:
        yield from self._clients.values()
        yield from self._servers.values()
        yield from self._acks.values()


def _to_tag(response: Response | None) -> str | None:
    if response is None:
        return None
    try:
        return response.to.tag
    except ParseError:
        return None
