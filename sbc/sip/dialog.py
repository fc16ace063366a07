"""SIP dialogs (RFC 3261 §12): the state that in-dialog requests are built from.

A dialog is identified by Call-ID, local tag and remote tag. It remembers
the route set and remote target (the peer's Contact), and both CSeq
counters. Rules worth keeping in mind:

- §12.1.1/§12.1.2: the UAS takes the route set from Record-Route in order,
  the UAC in reverse order; both take the remote target from Contact.
- §12.2.1.1: in-dialog requests go to the remote target with the route set
  as Route headers (loose routing; strict routing is not supported).
- §12.2.2: a request whose CSeq is lower than the last one seen gets 500;
  a target refresh (re-INVITE, UPDATE) replaces the remote target.
- RFC 3261 §12.1: an early dialog exists once a provisional carries a tag.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sbc.sip.address import Address
from sbc.sip.errors import SipError
from sbc.sip.headers import Headers
from sbc.sip.message import CSeq, Request, Response
from sbc.sip.uri import SipUri, Uri

#: RFC 3261 §12.2, RFC 3311 §5.1: requests that refresh the remote target.
TARGET_REFRESH_METHODS = frozenset(("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"))


@dataclass(slots=True)
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str | None
    local_uri: Address  # our From/To address (without tag)
    remote_uri: Address
    remote_target: Uri
    local_seq: int
    remote_seq: int | None = None
    route_set: list[Address] = field(default_factory=list)
    confirmed: bool = False

    @classmethod
    def as_uas(cls, request: Request, local_tag: str) -> Dialog:
        """The dialog a UAS creates when it answers ``request`` with a tag."""
        contacts = request.contacts
        if not contacts:
            raise SipError("missing Contact in dialog-creating request", 400)
        remote = request.from_.copy()
        local = request.to.copy()
        remote.params.pop("tag", None)
        local.params.pop("tag", None)
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag,
            local_uri=local,
            remote_uri=remote,
            remote_target=contacts[0].uri,
            local_seq=0,
            remote_seq=request.cseq.seq,
            route_set=list(request.record_routes),
        )

    @classmethod
    def as_uac(cls, request: Request, response: Response) -> Dialog:
        """The (early or confirmed) dialog from our request and its response."""
        contacts = response.contacts
        local = request.from_.copy()
        remote = request.to.copy()
        local_tag = local.params.pop("tag", None) or ""
        remote.params.pop("tag", None)
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=response.to.tag,
            local_uri=local,
            remote_uri=remote,
            remote_target=contacts[0].uri if contacts else request.uri,
            local_seq=request.cseq.seq,
            route_set=list(reversed(response.record_routes)),
            confirmed=200 <= response.status < 300,
        )

    # --- incoming ---

    def check_request(self, request: Request) -> None:
        """Validate CSeq ordering of an in-dialog request (§12.2.2)."""
        if request.method in ("ACK", "CANCEL"):
            return
        seq = request.cseq.seq
        if self.remote_seq is not None and seq <= self.remote_seq:
            if seq < self.remote_seq:
                raise SipError("CSeq out of order", 500)
            raise SipError("CSeq reused", 500)
        self.remote_seq = seq

    def refresh_target(self, message: Request | Response) -> None:
        """Take a new remote target from a target-refresh request or its 2xx."""
        contacts = message.contacts
        if contacts:
            self.remote_target = contacts[0].uri

    def update_from_response(self, response: Response) -> None:
        """UAC: a later response (e.g. the 2xx after an early dialog) updates state."""
        if response.to.tag:
            self.remote_tag = response.to.tag
        if response.contacts:
            self.remote_target = response.contacts[0].uri
        if response.record_routes:
            self.route_set = list(reversed(response.record_routes))
        if 200 <= response.status < 300:
            self.confirmed = True

    # --- outgoing ---

    def next_cseq(self) -> int:
        self.local_seq += 1
        return self.local_seq

    def create_request(self, method: str, seq: int | None = None) -> Request:
        """An in-dialog request without Via/Contact (the caller adds those)."""
        headers = Headers()
        local = self.local_uri.copy()
        local.params["tag"] = self.local_tag
        remote = self.remote_uri.copy()
        if self.remote_tag is not None:
            remote.params["tag"] = self.remote_tag
        for route in self.route_set:
            headers.add("Route", str(route))
        headers.add("From", str(local))
        headers.add("To", str(remote))
        headers.add("Call-ID", self.call_id)
        cseq = seq if seq is not None else self.next_cseq()
        headers.add("CSeq", str(CSeq(cseq, method)))
        headers.add("Max-Forwards", "70")
        return Request(method, self.remote_target.copy(), headers)

    def next_hop(self) -> SipUri | None:
        """Where an in-dialog request physically goes: first Route, else the target."""
        uri = self.route_set[0].uri if self.route_set else self.remote_target
        return uri if isinstance(uri, SipUri) else None
