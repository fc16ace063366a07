"""Shared builders for the transaction tests: messages, targets, a fake clock."""

from __future__ import annotations

from typing import TypeVar

from sbc.sip.message import Request, Response, build_response, parse_message
from sbc.sip.target import Target
from sbc.sip.transaction import Action, TransactionLayer, Transmit

T = TypeVar("T")

UDP = Target("ext", "udp", "192.0.2.10", 5060)
TCP = Target("ext", "tcp", "192.0.2.10", 5070, connection=7)
PEER = Target("int", "udp", "198.51.100.20", 5060)
PEER_TCP = Target("int", "tcp", "198.51.100.20", 5060, connection=9)


def make_request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bK-1",
    host: str = "192.0.2.10",
    port: int | None = 5060,
    transport: str = "UDP",
    cseq: int = 1,
    call_id: str = "call-1@example.com",
    to_tag: str | None = None,
    rport: bool = False,
) -> Request:
    sent_by = host if port is None else f"{host}:{port}"
    params = (f";branch={branch}" if branch else "") + (";rport" if rport else "")
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    text = (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {sent_by}{params}\r\n"
        "Max-Forwards: 70\r\n"
        "Route: <sip:proxy.example.com;lr>\r\n"
        "From: <sip:alice@example.com>;tag=from-1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def make_response(request: Request, status: int, to_tag: str | None = "to-1") -> Response:
    return build_response(request, status, to_tag=to_tag)


def only(actions: list[Action], kind: type[T]) -> list[T]:
    return [a for a in actions if isinstance(a, kind)]


def sent(actions: list[Action]) -> list[Request | Response]:
    """The messages of every Transmit, parsed back."""
    return [parse_message(a.data) for a in only(actions, Transmit)]


def statuses(actions: list[Action]) -> list[int]:
    return [m.status for m in sent(actions) if isinstance(m, Response)]


def kinds(actions: list[Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


def run_until(layer: TransactionLayer, end: float) -> list[tuple[float, Action]]:
    """Fire every deadline up to ``end``; return (time, action) pairs."""
    out: list[tuple[float, Action]] = []
    while (deadline := layer.get_timer()) is not None and deadline <= end:
        out.extend((deadline, a) for a in layer.handle_timer(deadline))
    return out
