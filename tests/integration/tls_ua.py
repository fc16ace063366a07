"""A small SIP-over-TLS peer for the integration tests (Debian's SIPp has no TLS).

Python's ``ssl`` module on blocking sockets with timeouts, nothing else:

- :class:`SipStream` frames SIP messages on one TLS connection (RFC 3261
  §18.3: headers up to the blank line, then Content-Length bytes) and keeps
  a log of what went each way, as :class:`~harness.SipMessage` like SIPp's;
- :class:`TlsCaller` is a UAC placing one call (INVITE with SDP, ACK, BYE)
  and answering the requests the far end sends in the dialog;
- :class:`TlsCarrier` is a UAS listening for TLS connections in a thread:
  100 and 200 (SDP) to INVITE, 200 to BYE and OPTIONS, takes ACK.

Every wait has a deadline; nothing here sleeps for a fixed time.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from harness import SipMessage

#: How long any single wait for the peer lasts.
WAIT_S = 5.0
_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)", re.IGNORECASE | re.M)
_MAX_MESSAGE = 65535
#: The carrier's SDP names a port; nobody sends RTP in these tests.
CARRIER_MEDIA_PORT = 40000


def _stamp() -> str:
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")


def branch() -> str:
    return "z9hG4bK" + uuid.uuid4().hex[:16]


def sdp(ip: str, port: int) -> str:
    return (
        "v=0\r\n"
        f"o=- 1 1 IN IP4 {ip}\r\n"
        "s=-\r\n"
        f"c=IN IP4 {ip}\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=sendrecv\r\n"
    )


def build(start_line: str, headers: Sequence[tuple[str, str]], body: str = "") -> str:
    """A message with Content-Length (and Content-Type for a body) added."""
    lines = [start_line, *(f"{name}: {value}" for name, value in headers)]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return "\r\n".join(lines) + "\r\n\r\n" + body


def answer(
    request: SipMessage,
    status: int,
    reason: str,
    *,
    to_tag: str = "",
    headers: Sequence[tuple[str, str]] = (),
    body: str = "",
) -> str:
    """A response to ``request``, copying what RFC 3261 §8.2.6.2 says it must."""
    to = request.header("To") or ""
    if to_tag and request.to_tag is None:
        to += f";tag={to_tag}"
    copied = [
        *(("Via", via) for via in request.header_all("Via")),
        ("From", request.header("From") or ""),
        ("To", to),
        ("Call-ID", request.call_id or ""),
        ("CSeq", request.header("CSeq") or ""),
    ]
    return build(f"SIP/2.0 {status} {reason}", [*copied, *headers], body)


class SipStream:
    """SIP messages over one TLS connection, with a log of both directions."""

    def __init__(self, sock: ssl.SSLSocket, log: list[SipMessage] | None = None) -> None:
        self.sock = sock
        self.log: list[SipMessage] = log if log is not None else []
        self.closed = False  # the peer closed the connection
        self._buffer = b""

    @property
    def local(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode())
        self.log.append(SipMessage.parse("sent", "TLS", _stamp(), text))

    def receive(self, timeout: float = WAIT_S) -> SipMessage | None:
        """The next message, or None if none arrives in time or the peer closed."""
        deadline = time.monotonic() + timeout
        while True:
            message = self._take()
            if message is not None:
                return message
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed:
                return None
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(_MAX_MESSAGE)
            except (TimeoutError, BlockingIOError):
                return None
            if not data:
                self.closed = True
                return None
            self._buffer += data

    def receive_until(self, final: int, timeout: float = WAIT_S) -> list[SipMessage]:
        """Messages until a response with status >= ``final`` (or the deadline)."""
        got: list[SipMessage] = []
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            message = self.receive(remaining)
            if message is None:
                break
            got.append(message)
            if (message.status or 0) >= final:
                break
        return got

    def _take(self) -> SipMessage | None:
        self._buffer = self._buffer.lstrip(b"\r\n")  # keepalives (RFC 5626 §3.5.1)
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        match = _CONTENT_LENGTH.search(self._buffer[:head_end])
        end = head_end + 4 + (int(match.group(1)) if match else 0)
        if len(self._buffer) < end:
            return None
        raw, self._buffer = self._buffer[:end], self._buffer[end:]
        message = SipMessage.parse("received", "TLS", _stamp(), raw.decode(errors="replace"))
        self.log.append(message)
        return message

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def open_tls(
    dest: tuple[str, int],
    context: ssl.SSLContext,
    *,
    local_ip: str,
    server_hostname: str | None = None,
) -> SipStream:
    """A TLS connection from ``local_ip`` to ``dest`` (handshake done; raises on failure)."""
    raw = socket.create_connection(dest, timeout=WAIT_S, source_address=(local_ip, 0))
    try:
        sock = context.wrap_socket(raw, server_hostname=server_hostname or dest[0])
    except BaseException:
        raw.close()
        raise
    return SipStream(sock)


class TlsCaller:
    """One call from a UAC over a TLS stream to the SBC at ``target``."""

    def __init__(self, stream: SipStream, target: tuple[str, int], number: str) -> None:
        self.stream = stream
        self.target = target
        self.number = number
        self.call_id = uuid.uuid4().hex
        self.tag = uuid.uuid4().hex[:8]
        self.cseq = 0
        self.remote_target = f"sip:{number}@{target[0]}:{target[1]};transport=tls"
        self.route: list[str] = []
        self.to = f"<sip:{number}@{target[0]}:{target[1]}>"

    @property
    def _ip_port(self) -> str:
        ip, port = self.stream.local
        return f"{ip}:{port}"

    def _request(self, method: str, uri: str, cseq: int, *, body: str = "") -> str:
        headers = [
            ("Via", f"SIP/2.0/TLS {self._ip_port};branch={branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:caller@{self.stream.local[0]}>;tag={self.tag}"),
            ("To", self.to),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Contact", f"<sip:caller@{self._ip_port};transport=tls>"),
            *(("Route", route) for route in self.route),
        ]
        return build(f"{method} {uri} SIP/2.0", headers, body)

    def invite(self, media_port: int) -> list[SipMessage]:
        """Send the INVITE with SDP; return the responses up to the final one."""
        self.cseq += 1
        uri = f"sip:{self.number}@{self.target[0]}:{self.target[1]};transport=tls"
        body = sdp(self.stream.local[0], media_port)
        self.stream.send(self._request("INVITE", uri, self.cseq, body=body))
        responses = self.stream.receive_until(200)
        final = responses[-1] if responses else None
        if final is not None and final.status == 200:
            self.to = final.header("To") or self.to
            self.remote_target = final.contact_uri or self.remote_target
            self.route = list(reversed(final.header_all("Record-Route")))
        return responses

    def ack(self) -> None:
        self.stream.send(self._request("ACK", self.remote_target, self.cseq))

    def bye(self) -> list[SipMessage]:
        """Send BYE in the dialog; return the responses up to the final one."""
        self.cseq += 1
        self.stream.send(self._request("BYE", self.remote_target, self.cseq))
        return self.stream.receive_until(200)

    def answer_requests(self, timeout: float = WAIT_S) -> list[SipMessage]:
        """Answer 200 to requests from the far end until a BYE (or the deadline)."""
        got: list[SipMessage] = []
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            message = self.stream.receive(remaining)
            if message is None:
                break
            got.append(message)
            if message.is_request and message.method != "ACK":
                self.stream.send(answer(message, 200, "OK"))
            if message.method == "BYE":
                break
        return got


class TlsCarrier:
    """A carrier's UAS on a TLS listener, run in threads until :meth:`stop`.

    Every connection gets a thread; what they received and sent is kept in
    :attr:`messages` (in order, across connections), and failed handshakes
    in :attr:`handshake_errors`.
    """

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext) -> None:
        self.address = address
        self.context = context
        self.messages: list[SipMessage] = []  # appended by the connection threads
        self.handshake_errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(address)
        self._listener.settimeout(0.1)  # how often the accept loop looks at _stop

    def __enter__(self) -> TlsCarrier:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=WAIT_S)
        self._listener.close()

    def received(self, method: str | None = None) -> list[SipMessage]:
        return [
            m
            for m in list(self.messages)
            if m.direction == "received" and (method is None or m.method == method)
        ]

    def wait_for(self, method: str, timeout: float = WAIT_S) -> bool:
        """Poll (bounded) until a ``method`` request has arrived."""
        deadline = time.monotonic() + timeout
        while not self.received(method):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._spawn(self._serve, raw)

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(WAIT_S)
        try:
            sock = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.handshake_errors.append(str(exc))
            raw.close()
            return
        stream = SipStream(sock, self.messages)
        to_tag = uuid.uuid4().hex[:8]
        try:
            while not self._stop.is_set() and not stream.closed:
                message = stream.receive(0.1)
                if message is not None:
                    self._handle(stream, message, to_tag)
        except (ssl.SSLError, OSError):
            pass  # the SBC closed or broke the connection: nothing more to answer
        finally:
            stream.close()

    def _handle(self, stream: SipStream, request: SipMessage, to_tag: str) -> None:
        if not request.is_request or request.method == "ACK":
            return
        if request.method != "INVITE":
            stream.send(answer(request, 200, "OK", to_tag=to_tag))
            return
        host, port = self.address
        stream.send(answer(request, 100, "Trying"))
        stream.send(
            answer(
                request,
                200,
                "OK",
                to_tag=to_tag,
                headers=[("Contact", f"<sip:carrier@{host}:{port};transport=tls>")],
                body=sdp(host, CARRIER_MEDIA_PORT),
            )
        )
