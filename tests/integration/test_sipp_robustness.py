"""Bad input over real sockets: the SBC answers 400 (or stays silent), never dies.

Sends the RFC 4475 torture corpus (tests/sip/torture/), a handful of broken
requests of our own, 200 random-garbage datagrams over UDP and some garbage
over TCP, then checks that the process is alive and a basic call completes.
Its own module-scoped SBC, so that nothing here disturbs the call-flow tests.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SippPair
from harness import (
    CARRIER_IP,
    REPO_ROOT,
    STRANGER_IP,
    SbcProcess,
    options_ping,
    sip_status,
)

pytestmark = pytest.mark.integration

TORTURE = REPO_ROOT / "tests" / "sip" / "torture"
# RFC 4475 cases the SBC accepts on purpose (see tests/sip/torture/README.md)
LIBERAL = {"lwsstart", "trws", "baddate"}


@pytest.fixture(scope="module")
def sbc_victim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    sbc = SbcProcess(tmp_path_factory.mktemp("sbc-robust"))
    try:
        sbc.start()
    except RuntimeError as exc:
        pytest.fail(f"SBC did not start: {exc}", pytrace=False)
    yield sbc
    sbc.stop()


def _request(first_line: str, headers: list[str], body: str = "") -> bytes:
    return ("\r\n".join([first_line, *headers]) + "\r\n\r\n" + body).encode()


#: Broken beyond answering: a response could not be matched, or there is no
#: request to answer (RFC 3261 §8.2.6 needs Call-ID and CSeq; a header line
#: without a colon stops parsing before any header is known).
UNANSWERABLE = frozenset(("no-call-id", "no-cseq", "header-without-colon"))


def own_broken(src_port: int) -> dict[str, bytes]:
    """Requests broken in ways a parser must reject; Via with rport → answer to us."""
    via = f"Via: SIP/2.0/UDP {CARRIER_IP}:{src_port};branch=z9hG4bK-bad-{{n}};rport"
    base = [
        "Max-Forwards: 70",
        f"From: <sip:bad@{CARRIER_IP}>;tag=bad1",
        "To: <sip:x@127.0.0.1>",
    ]

    def hdrs(n: int, *extra: str, call_id: bool = True, cseq: str = "1 OPTIONS") -> list[str]:
        out = [via.format(n=n), *base]
        if call_id:
            out.append(f"Call-ID: bad-{n}@{CARRIER_IP}")
        if cseq:
            out.append(f"CSeq: {cseq}")
        return [*out, *extra]

    return {
        "no-call-id": _request(
            "OPTIONS sip:127.0.0.1 SIP/2.0", hdrs(1, "Content-Length: 0", call_id=False)
        ),
        "no-cseq": _request("OPTIONS sip:127.0.0.1 SIP/2.0", hdrs(2, "Content-Length: 0", cseq="")),
        "cseq-not-a-number": _request(
            "OPTIONS sip:127.0.0.1 SIP/2.0", hdrs(3, "Content-Length: 0", cseq="abc OPTIONS")
        ),
        "cseq-method-mismatch": _request(
            "OPTIONS sip:127.0.0.1 SIP/2.0", hdrs(4, "Content-Length: 0", cseq="1 INVITE")
        ),
        "content-length-too-big": _request(
            "INVITE sip:x@127.0.0.1 SIP/2.0",
            hdrs(5, "Content-Type: application/sdp", "Content-Length: 5000", cseq="1 INVITE"),
            "v=0\r\n",
        ),
        "negative-content-length": _request(
            "OPTIONS sip:127.0.0.1 SIP/2.0", hdrs(6, "Content-Length: -5")
        ),
        "bad-request-uri": _request("OPTIONS sip:<>@@ SIP/2.0", hdrs(7, "Content-Length: 0")),
        "bad-max-forwards": _request(
            "OPTIONS sip:127.0.0.1 SIP/2.0",
            [h.replace("Max-Forwards: 70", "Max-Forwards: seventy") for h in hdrs(8)]
            + ["Content-Length: 0"],
        ),
        "header-without-colon": _request(
            "OPTIONS sip:127.0.0.1 SIP/2.0", hdrs(9, "This is not a header", "Content-Length: 0")
        ),
        "bad-from": _request(
            "OPTIONS sip:127.0.0.1 SIP/2.0",
            [h.replace(f"<sip:bad@{CARRIER_IP}>", "<<<") for h in hdrs(10)] + ["Content-Length: 0"],
        ),
    }


def _drain(sock: socket.socket, quiet_s: float = 0.3, limit_s: float = 2.0) -> list[bytes]:
    out: list[bytes] = []
    deadline = time.monotonic() + limit_s
    sock.settimeout(quiet_s)
    while time.monotonic() < deadline:
        try:
            out.append(sock.recv(65535))
        except (TimeoutError, ConnectionRefusedError):
            break
    return out


def test_torture_corpus_and_garbage(
    sbc_victim: SbcProcess, sipp_pair: SippPair, tmp_path: Path
) -> None:
    sbc = sbc_victim
    problems: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((CARRIER_IP, 0))
        port = sock.getsockname()[1]

        # 1. our own broken requests: a 400 whose reason phrase names the
        # problem, except where no response can be built (it would lack the
        # Call-ID or CSeq to match, or the header section does not parse).
        for name, data in own_broken(port).items():
            sock.sendto(data, sbc.ext)
            replies = _drain(sock)
            if name in UNANSWERABLE:
                if replies:
                    problems.append(f"{name}: answered {replies[0][:60]!r}")
                continue
            lines = [r.split(b"\r\n", 1)[0] for r in replies]
            if len(lines) != 1 or not lines[0].startswith(b"SIP/2.0 400 Bad Request ("):
                problems.append(f"{name}: expected one 400 naming the problem, got {lines!r}")

        # 2. the RFC 4475 corpus. Invalid messages come from the carrier and must
        # never get a 1xx/2xx; the whole corpus also comes from a stranger, so
        # that valid INVITEs are refused instead of ringing the PBX port (their
        # retransmissions would reach the callee of the final call).
        if TORTURE.is_dir():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
                stranger.bind((STRANGER_IP, 0))
                for path in sorted(TORTURE.glob("*/*.sip")):
                    invalid = path.parent.name == "invalid" and path.stem not in LIBERAL
                    senders = [sock, stranger] if invalid else [stranger]
                    for sender in senders:
                        sender.sendto(path.read_bytes(), sbc.ext)
                        for reply in _drain(sender, quiet_s=0.15, limit_s=1.0):
                            status = sip_status(reply)
                            if status is None:
                                problems.append(f"{path.name}: non-SIP reply {reply[:60]!r}")
                            elif status < 300:
                                problems.append(f"{path.name}: answered {status}")

        # 3. 200 random datagrams, some binary, some SIP-looking
        rng = random.Random(4475)
        for i in range(200):
            if i % 4 == 0:
                junk = b"INVITE sip:" + rng.randbytes(rng.randint(0, 300)) + b" SIP/2.0\r\n\r\n"
            elif i % 4 == 1:
                junk = b"SIP/2.0 200 OK\r\n" + rng.randbytes(rng.randint(0, 200))
            else:
                junk = rng.randbytes(rng.randint(1, 1400))
            sock.sendto(junk, sbc.ext)
            if i % 50 == 0:
                sock.sendto(rng.randbytes(60000), sbc.int_)
        for reply in _drain(sock, limit_s=3.0):
            status = sip_status(reply)
            if status is None or status < 400:
                problems.append(f"garbage: answered {reply[:60]!r}")

    # 4. garbage over TCP: binary, an endless header line, a truncated message
    tcp_payloads = [
        random.Random(1).randbytes(4096),
        b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: " + b"A" * 200_000,
        b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nContent-Length: 100\r\n\r\nshort",
        b"\r\n\r\n" * 1000,
    ]
    for payload in tcp_payloads:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((CARRIER_IP, 0))
            tcp.settimeout(3.0)
            tcp.connect(sbc.ext)
            try:
                tcp.sendall(payload)
                tcp.shutdown(socket.SHUT_WR)
                while tcp.recv(65535):  # until the SBC closes or goes quiet
                    pass
            except OSError:  # reset, closed by the SBC, or quiet: all fine
                pass

    assert sbc.alive(), f"SBC died on bad input:\n{sbc.stderr_tail()}"
    assert options_ping(CARRIER_IP, sbc.ext, timeout=2.0) == 200, "SBC stopped answering"
    uas, uac = sipp_pair(sbc, "uas_basic", "uac_basic")
    assert uac.ok, uac.describe() + uas.describe()
    assert uas.ok, uas.describe()
    assert not problems, "\n".join(problems)
