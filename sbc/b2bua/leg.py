"""One side of a call: a dialog plus where and how we reach the peer.

The A-leg is the dialog in which the SBC is the UAS (the caller's side),
the B-leg the one in which it is the UAC. Each leg stamps its own Via,
Contact and User-Agent on what it sends, from its own interface: nothing
of the other leg's addressing is ever reused.

Trust in a dialog (docs/policies.md, "In-dialog trust"). Knowing a dialog's
Call-ID and tags is not enough to act in it: an in-dialog request or ACK
must come from the leg's peer (:meth:`Leg.sent_by_peer`), and what the peer
says about where to reach it (Contact, Record-Route: RFC 3261 §12.2.1.1)
may only point at the peer's own addresses (:meth:`Leg.next_hop`). A
trunk's addresses are its ``address`` and ``sources`` plus where the leg
met it (any port: trunks are known by address, and a TCP source cannot be
forged); a registered phone is its flow — the address and port, or the
connection, of its binding (RFC 5626 §5), which only a new registration
moves. A trunk's ``peer_may_move`` and ``trust_route`` lift the two rules.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum

from sbc.b2bua.config import CallConfig
from sbc.b2bua.identity import uri_host, via_value
from sbc.b2bua.regrelay import Binding
from sbc.policy import Interface, Trunk
from sbc.sip.dialog import Dialog
from sbc.sip.message import Message, Request, Response
from sbc.sip.target import Target
from sbc.sip.via import DEFAULT_PORTS


class Side(Enum):
    A = "a"  # we are the UAS
    B = "b"  # we are the UAC

    @property
    def other(self) -> Side:
        return Side.B if self is Side.A else Side.A


@dataclass(slots=True)
class Leg:
    side: Side
    interface: Interface
    transport: str  # "udp" | "tcp"
    peer: Target  # where the peer was reached or heard from first
    trunk: Trunk | None
    config: CallConfig
    dialog: Dialog | None = None
    # Offer/answer bookkeeping for glare (RFC 3261 §14.2, RFC 3311 §5.2).
    pending_incoming_invite: bool = False
    pending_outgoing_invite: bool = False
    last_ack: Request | None = None  # re-sent on 2xx retransmissions (UAC side)
    # Where the peer's messages really come from: in-dialog requests go here
    # (with its connection), whatever its Contact says — a NATed endpoint's
    # Contact names an address nobody outside can reach (RFC 3581 spirit).
    observed: Target | None = None
    extensions: frozenset[str] = field(default_factory=frozenset)
    # A registered phone's leg: the binding says where the phone is now.
    binding: Binding | None = None
    # The leak guard's memo of what names the other leg on the wire, with the state
    # it was read from (sbc.b2bua.leaks.ids): read again only when that changes.
    leak_probes: object = None

    @property
    def host(self) -> str:
        return self.interface.advertised_address

    @property
    def port(self) -> int:
        return self.interface.port_for(self.transport)

    def via(self) -> str:
        return via_value(self.transport, self.host, self.port)

    def contact(self) -> str:
        suffix = "" if self.transport == "udp" else f";transport={self.transport}"
        return f"<sip:{uri_host(self.host)}:{self.port}{suffix}>"

    def stamp_request(self, request: Request) -> Request:
        """Add our Via (top), Contact where a dialog needs one, and User-Agent."""
        request.headers.prepend("Via", self.via())
        if request.method in ("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"):
            request.headers.set("Contact", self.contact())
        if self.config.user_agent and "User-Agent" not in request.headers:
            request.headers.add("User-Agent", self.config.user_agent)  # unless passed through
        return request

    def stamp_response(self, response: Response, *, dialog: bool) -> Response:
        if dialog:
            response.headers.set("Contact", self.contact())
        if self.config.user_agent and "Server" not in response.headers:
            response.headers.add("Server", self.config.user_agent)  # unless passed through
        return response

    def sent_by_peer(self, source: Target) -> bool:
        """Whether an in-dialog request or ACK from ``source`` may be the peer's."""
        if self.binding is not None:
            return _same_flow(source, self.binding.source)
        if self.trunk is not None and self.trunk.peer_may_move:
            return True
        return self._owns(source.host)

    def next_hop(self) -> Target:
        """Where an in-dialog request goes: a route set when the peer sent one,
        else the peer's observed source, else its Contact if that is an IP;
        never an address that is not the peer's unless its trunk trusts routes."""
        reached = self.binding.source if self.binding is not None else self.observed
        routed = self.dialog is not None and bool(self.dialog.route_set)
        if not routed and reached is not None:
            return reached
        uri = self.dialog.next_hop() if self.dialog is not None else None
        if uri is None or not _is_ip(uri.host_bare):
            return self.peer
        transport = uri.transport or self.transport
        if transport != self.peer.transport:
            transport = self.peer.transport  # we only listen where the leg began
        port = uri.port or DEFAULT_PORTS.get(transport, 5060)
        if uri.host_bare == self.peer.host and port == self.peer.port:
            return self.peer
        if not self._may_send_to(uri.host_bare):
            return reached or self.peer  # RFC 3261 §12.2.1.1 overridden: not the peer's
        return Target(self.interface.name, transport, uri.host_bare, port)

    def _owns(self, host: str) -> bool:
        """``host`` is the peer's: where the leg met it, or its trunk's address."""
        if host == self.peer.host or (self.observed is not None and host == self.observed.host):
            return True
        return self.trunk is not None and self.trunk.owns_address(host)

    def _may_send_to(self, host: str) -> bool:
        if self.binding is not None:
            return host == self.binding.source.host
        return (self.trunk is not None and self.trunk.trust_route) or self._owns(host)


def has_sdp(message: Message) -> bool:
    return bool(message.body) and message.content_type == "application/sdp"


def _same_flow(source: Target, flow: Target) -> bool:
    """``source`` is ``flow``: its connection, or its address and port (RFC 5626 §5)."""
    if source.transport != flow.transport:
        return False
    if source.connection is not None and flow.connection is not None:
        return source.connection == flow.connection
    return source.host == flow.host and source.port == flow.port


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
