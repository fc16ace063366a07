"""In-memory SIP peers for driving :class:`sbc.b2bua.core.Core` without sockets.

A :class:`FakeUA` writes its requests and responses as text (independently
of the code under test), parses whatever the core sends it into ``inbox``
and remembers its dialogs. A :class:`Net` owns the fake clock, hands each
message a peer sends to the core and routes the core's ``Transmit`` actions
to the peer whose host they name. Time only moves through :meth:`Net.advance`.
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from sbc.b2bua.core import Core
from sbc.media.control import StreamSpec, StreamStats
from sbc.policy import Policy, load_policy
from sbc.sip.errors import ParseError
from sbc.sip.message import Request, Response, parse_message
from sbc.sip.target import Target
from sbc.sip.transaction import Transmit

POLICIES = Path(__file__).resolve().parents[2] / "policies"
#: The demo's two trunks, for tests that give one of them more lines.
CARRIER_TRUNK = "  - name: carrier\n    interface: external\n    address: 127.0.0.10\n"
PBX_TRUNK = "  - name: pbx\n    interface: internal\n    address: 127.0.0.20\n"


def policy_copy(tmp_path: Path, carrier_lines: str = "", pbx_lines: str = "") -> Path:
    """The demo policies without manipulations, the carrier and PBX trunks
    each followed by the YAML lines given (indented as trunk fields)."""
    directory = tmp_path / "policies"
    shutil.copytree(POLICIES, directory)
    (directory / "manipulations.yaml").unlink()
    (directory / "trunks.yaml").write_text(
        "trunks:\n" + CARRIER_TRUNK + carrier_lines + PBX_TRUNK + pbx_lines
    )
    return directory


class NoRelay:
    """A relay control that relays nothing: for core tests that read SDP only."""

    def update(self, stream: StreamSpec) -> None:
        pass

    def remove(self, session: str, index: int) -> None:
        pass

    def delete(self, session: str) -> None:
        pass

    def stats(self, session: str) -> list[StreamStats]:
        return []


CARRIER_HOST, PBX_HOST = "127.0.0.10", "127.0.0.20"
EXTERNAL_HOST, INTERNAL_HOST = "127.0.0.1", "127.0.0.2"

Message = Request | Response


def sdp(host: str, port: int = 4000, direction: str = "sendrecv", version: int = 1) -> bytes:
    return (
        "v=0\r\n"
        f"o=- 1 {version} IN IP4 {host}\r\n"
        "s=-\r\n"
        f"c=IN IP4 {host}\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 8 101\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        f"a={direction}\r\n"
    ).encode()


@dataclass
class Dlg:
    """What a fake peer remembers of one dialog (or dialog attempt)."""

    call_id: str
    local_tag: str
    remote_tag: str | None
    local_uri: str
    remote_uri: str
    remote_target: str
    cseq: int
    invite: Request | None = None  # our INVITE, when we are the UAC
    responses: list[Response] = field(default_factory=list)

    @property
    def to_tag(self) -> str | None:
        return self.remote_tag


class FakeUA:
    """One far end (the carrier or the PBX)."""

    def __init__(self, net: Net, name: str, host: str, interface: str, sbc_host: str) -> None:
        self.net = net
        self.name = name
        self.host = host
        self.interface = interface
        self.sbc_host = sbc_host
        self.inbox: list[Message] = []
        self.unparsed: list[bytes] = []
        self.targets: list[Target] = []
        self.dialogs: dict[str, Dlg] = {}
        self._ids = itertools.count(1)

    @property
    def source(self) -> Target:
        return Target(self.interface, "udp", self.host, 5060)

    def _next(self) -> int:
        return next(self._ids)

    def branch(self) -> str:
        return f"z9hG4bK-{self.name}-{self._next()}"

    # --- inbox ------------------------------------------------------------

    def receive(self, message: Message) -> None:
        self.inbox.append(message)
        if isinstance(message, Response) and message.cseq.method == "INVITE":
            dlg = self.dialogs.get(message.call_id)
            if dlg is not None and dlg.invite is not None:
                dlg.responses.append(message)
                if message.to.tag and 100 < message.status < 300:
                    dlg.remote_tag = message.to.tag
                    if message.contacts:
                        dlg.remote_target = str(message.contacts[0].uri)

    def requests(self, method: str) -> list[Request]:
        return [m for m in self.inbox if isinstance(m, Request) and m.method == method]

    def responses(self, status: int | None = None, method: str | None = None) -> list[Response]:
        return [
            m
            for m in self.inbox
            if isinstance(m, Response)
            and (status is None or m.status == status)
            and (method is None or m.cseq.method == method)
        ]

    def take(self, what: str | int, method: str | None = None) -> Message:
        """Remove and return the one message of that method/status (asserts exactly one)."""
        found: list[Message]
        if isinstance(what, str):
            found = list(self.requests(what))
        else:
            found = list(self.responses(what, method))
        assert len(found) == 1, f"{self.name}: expected one {what}, inbox {self.summary()}"
        self.inbox.remove(found[0])
        return found[0]

    def take_request(self, method: str) -> Request:
        message = self.take(method)
        assert isinstance(message, Request)
        return message

    def take_response(self, status: int, method: str | None = None) -> Response:
        message = self.take(status, method)
        assert isinstance(message, Response)
        return message

    def summary(self) -> list[str]:
        return [
            m.method if isinstance(m, Request) else f"{m.status} {m.cseq.method}"
            for m in self.inbox
        ]

    def clear(self) -> None:
        self.inbox.clear()

    # --- building -----------------------------------------------------------

    def _request_text(
        self,
        method: str,
        ruri: str,
        *,
        branch: str,
        from_: str,
        to: str,
        call_id: str,
        cseq: str,
        contact: bool,
        body: bytes,
        headers: list[tuple[str, str]],
    ) -> bytes:
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:5060;branch={branch}",
            "Max-Forwards: 70",
            f"From: {from_}",
            f"To: {to}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq}",
        ]
        if contact:
            lines.append(f"Contact: <sip:{self.name}@{self.host}:5060>")
        lines.extend(f"{name}: {value}" for name, value in headers)
        if body and not any(n.lower() == "content-type" for n, _ in headers):
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def invite(
        self,
        user: str = "1000",
        *,
        body: bytes | None = None,
        headers: list[tuple[str, str]] | None = None,
        send: bool = True,
    ) -> Dlg:
        """Start a call to the SBC; returns our dialog attempt."""
        n = self._next()
        call_id = f"{self.name}-call-{n}@{self.host}"
        tag = f"{self.name}-tag-{n}"
        ruri = f"sip:{user}@{self.sbc_host}:5060"
        from_uri = f"<sip:{self.name}@{self.host}>"
        to_uri = f"<sip:{user}@{self.sbc_host}>"
        body = sdp(self.host) if body is None else body
        data = self._request_text(
            "INVITE",
            ruri,
            branch=self.branch(),
            from_=f"{from_uri};tag={tag}",
            to=to_uri,
            call_id=call_id,
            cseq="1 INVITE",
            contact=True,
            body=body,
            headers=headers or [],
        )
        request = parse_message(data)
        assert isinstance(request, Request)
        dlg = Dlg(call_id, tag, None, from_uri, to_uri, ruri, 1, invite=request)
        self.dialogs[call_id] = dlg
        if send:
            self.net.deliver(self, data)
        return dlg

    def request(
        self,
        dlg: Dlg,
        method: str,
        *,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        cseq: int | None = None,
        send: bool = True,
    ) -> Request:
        """An in-dialog request (ACK for a 2xx reuses the INVITE's CSeq via ``cseq``)."""
        if cseq is None:
            dlg.cseq += 1
            cseq = dlg.cseq
        to = dlg.remote_uri + (f";tag={dlg.remote_tag}" if dlg.remote_tag else "")
        data = self._request_text(
            method,
            dlg.remote_target,
            branch=self.branch(),
            from_=f"{dlg.local_uri};tag={dlg.local_tag}",
            to=to,
            call_id=dlg.call_id,
            cseq=f"{cseq} {method}",
            contact=method in ("INVITE", "UPDATE", "NOTIFY", "REFER", "SUBSCRIBE"),
            body=body,
            headers=headers or [],
        )
        request = parse_message(data)
        assert isinstance(request, Request)
        if send:
            self.net.deliver(self, data)
        return request

    def ack(self, dlg: Dlg, *, body: bytes = b"", seq: int | None = None) -> Request:
        """ACK a 2xx to our INVITE (a new transaction, RFC 3261 §13.2.2.4)."""
        assert dlg.invite is not None
        return self.request(
            dlg, "ACK", body=body, cseq=seq if seq is not None else dlg.invite.cseq.seq
        )

    def cancel(self, dlg: Dlg) -> Request:
        """CANCEL our INVITE: same branch, R-URI, Call-ID, From, To (§9.1)."""
        invite = dlg.invite
        assert invite is not None
        lines = [
            f"CANCEL {invite.uri} SIP/2.0",
            f"Via: {invite.headers.get('Via')}",
            "Max-Forwards: 70",
            f"From: {invite.headers.get('From')}",
            f"To: {invite.headers.get('To')}",
            f"Call-ID: {invite.call_id}",
            f"CSeq: {invite.cseq.seq} CANCEL",
            "Content-Length: 0",
        ]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode()
        request = parse_message(data)
        assert isinstance(request, Request)
        self.net.deliver(self, data)
        return request

    def respond(
        self,
        request: Request,
        status: int,
        *,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        reason: str | None = None,
        send: bool = True,
    ) -> Response:
        """Answer ``request``; a tagged answer to an INVITE remembers the dialog."""
        headers = headers or []
        to = request.headers.get("To") or ""
        dlg = self.dialogs.get(request.call_id)
        if status > 100 and request.to.tag is None:
            if dlg is None and request.method == "INVITE":
                dlg = self._uas_dialog(request)
            to = f"{to};tag={dlg.local_tag if dlg else self.name + '-x'}"
        lines = [f"SIP/2.0 {status} {reason or _REASONS.get(status, 'Whatever')}"]
        lines.extend(f"Via: {v}" for v in request.headers.get_all("Via"))
        lines.append(f"From: {request.headers.get('From')}")
        lines.append(f"To: {to}")
        lines.append(f"Call-ID: {request.call_id}")
        lines.append(f"CSeq: {request.headers.get('CSeq')}")
        dialog_creating = request.method in ("INVITE", "UPDATE", "SUBSCRIBE", "REFER", "NOTIFY")
        if 100 < status < 300 and dialog_creating:
            lines.append(f"Contact: <sip:{self.name}@{self.host}:5060>")
        lines.extend(f"{name}: {value}" for name, value in headers)
        if body and not any(n.lower() == "content-type" for n, _ in headers):
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        response = parse_message(data)
        assert isinstance(response, Response)
        if send:
            self.net.deliver(self, data)
        return response

    def _uas_dialog(self, request: Request) -> Dlg:
        n = self._next()
        from_ = request.from_.copy()
        from_.params.pop("tag", None)
        to = request.to.copy()
        dlg = Dlg(
            request.call_id,
            f"{self.name}-tag-{n}",
            request.from_.tag,
            str(to),
            str(from_),
            str(request.contacts[0].uri),
            100,
        )
        self.dialogs[request.call_id] = dlg
        return dlg

    def dialog_of(self, message: Message) -> Dlg:
        return self.dialogs[message.call_id]

    def resend(self, message: Message) -> None:
        self.net.deliver(self, message.serialize())


_REASONS = {
    100: "Trying",
    180: "Ringing",
    181: "Forwarded",
    183: "Session Progress",
    200: "OK",
    302: "Moved Temporarily",
    404: "Not Found",
    408: "Request Timeout",
    481: "Call/Transaction Does Not Exist",
    486: "Busy Here",
    487: "Request Terminated",
    491: "Request Pending",
    503: "Service Unavailable",
    603: "Decline",
}


class Net:
    """The fake network: a clock, the core, and two peers routed by host."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.now = 0.0
        self.core = Core(policy or load_policy(POLICIES))
        self.carrier = FakeUA(self, "carrier", CARRIER_HOST, "external", EXTERNAL_HOST)
        self.pbx = FakeUA(self, "pbx", PBX_HOST, "internal", INTERNAL_HOST)
        self.log: list[tuple[Target, bytes]] = []
        self.drop_next: set[str] = set()  # "carrier"/"pbx": lose the next message to it
        self.by_host = {CARRIER_HOST: self.carrier, PBX_HOST: self.pbx}

    def peer(self, side: str) -> FakeUA:
        return self.carrier if side == "carrier" else self.pbx

    def add_peer(self, name: str, host: str, interface: str = "external") -> FakeUA:
        """Another far end (e.g. a second carrier for failover)."""
        sbc_host = EXTERNAL_HOST if interface == "external" else INTERNAL_HOST
        ua = FakeUA(self, name, host, interface, sbc_host)
        self.by_host[host] = ua
        return ua

    def deliver(self, ua: FakeUA, data: bytes) -> None:
        self.route(self.core.receive(data, ua.source, self.now))

    def deliver_from(self, source: Target, data: bytes) -> list[Transmit]:
        out = self.core.receive(data, source, self.now)
        self.route(out)
        return out

    def route(self, transmits: list[Transmit]) -> None:
        for transmit in transmits:
            self.log.append((transmit.target, transmit.data))
            ua = self.by_host.get(transmit.target.host)
            if ua is None:
                continue  # sent to someone else (a stranger): see self.log
            assert transmit.target.interface == ua.interface, transmit
            if ua.name in self.drop_next:
                self.drop_next.discard(ua.name)
                continue
            ua.targets.append(transmit.target)
            try:
                message = parse_message(transmit.data)
            except ParseError:
                ua.unparsed.append(transmit.data)  # e.g. a 400 echoing the broken header
                continue
            ua.receive(message)

    def advance(self, seconds: float) -> None:
        """Move the clock, firing every deadline on the way at its own time."""
        end = self.now + seconds
        while (deadline := self.core.get_timer()) is not None and deadline <= end:
            self.now = max(self.now, deadline)
            self.route(self.core.handle_timer(self.now))
        self.now = end

    def settle(self) -> None:
        """Let every transaction run out (generous: Timer D/L/M and friends)."""
        self.advance(300)


def headers_text(message: Message) -> str:
    """Everything but the body, as on the wire."""
    return message.serialize().split(b"\r\n\r\n", 1)[0].decode()


def established(net: Net, caller: FakeUA, callee: FakeUA) -> tuple[Dlg, Dlg]:
    """A confirmed call from ``caller`` to ``callee``; inboxes emptied."""
    a = caller.invite()
    invite = callee.take_request("INVITE")
    callee.respond(invite, 180)
    callee.respond(invite, 200, body=sdp(callee.host))
    caller.ack(a)
    caller.clear()
    callee.clear()
    return a, callee.dialog_of(invite)
