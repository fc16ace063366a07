"""Hostile traffic at a live call's relay ports (the running SBC, a relay worker).

While a SIPp call carries RTP both ways, an attacker on 127.0.0.66 sends
malformed STUN (attributes that overrun, lengths that lie, an address of an
unknown family, a short PRIORITY or FINGERPRINT: what made the relay raise
once per packet) and well-formed plain STUN Binding requests at every relay
port the call's SDP names (RTP and RTCP, both legs). Checked where it
lands: the attacker receives nothing (no STUN reflection), the call's RTP
arrives ≥ 99 % both ways, the SBC's output carries no traceback, the
refusals are counted in /metrics, and the carrier's own endpoint (its SDP's
IP) still gets its Binding requests answered.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aioice import stun
from harness import CARRIER_IP, PBX_IP, SbcProcess, Sipp, free_port
from rtp import RtpEndpoint, sdp_media_address

pytestmark = pytest.mark.integration

ATTACKER_IP = "127.0.0.66"
PACKETS = 150  # at 10 ms: 1.5 s of media each way
ROUNDS = 10  # of the hostile set, at each relay port
TOKEN = "hostile-media-test-admin-token-0123456789"
COOKIE = 0x2112A442


def _stun(*attributes: bytes, length: int | None = None) -> bytes:
    body = b"".join(attributes)
    size = len(body) if length is None else length
    return struct.pack("!HHI12s", 0x0001, size, COOKIE, bytes(range(12))) + body


def _attribute(kind: int, value: bytes, length: int | None = None) -> bytes:
    size = len(value) if length is None else length
    return struct.pack("!HH", kind, size) + value + bytes(-len(value) % 4)


#: What a hostile network sends a relay port as STUN.
HOSTILE = [
    _stun(_attribute(0x0024, b"\x01\x02")),  # PRIORITY of 2 octets (struct.error before)
    _stun(_attribute(0x8028, b"\x01")),  # FINGERPRINT of 1 octet
    _stun(_attribute(0x802A, bytes(4))),  # ICE-CONTROLLING of 4 octets
    _stun(_attribute(0x0020, b"\x00\x07\x12\x34" + bytes(4))),  # XOR-MAPPED-ADDRESS family 7
    _stun(_attribute(0x0006, b"user", length=400)),  # USERNAME overrunning the message
    _stun(_attribute(0x0006, b"user"), length=300),  # a header length that lies
    _stun(b"\x00\x06\x00"),  # a truncated attribute header
    bytes(stun.Message(stun.Method.BINDING, stun.Class.REQUEST)),  # a plain Binding request
]


@pytest.fixture(scope="module")
def sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    process = SbcProcess(
        tmp_path_factory.mktemp("sbc-media-hostile"),
        extra_sbc_yaml="calls: {shutdown_grace_s: 2}\nmedia: {workers: 1}\n",
        admin_token=TOKEN,
    )
    process.start()
    yield process
    process.stop()


class Attacker:
    """A socket on 127.0.0.66 that records every datagram sent back to it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ATTACKER_IP, free_port(ATTACKER_IP)))
        self.sock.settimeout(0.2)
        self.received: list[tuple[bytes, tuple[str, int]]] = []
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                self.received.append(self.sock.recvfrom(2048))
            except (TimeoutError, OSError):
                continue

    def attack(self, targets: list[tuple[str, int]]) -> None:
        for _ in range(ROUNDS):
            for target in targets:
                for packet in HOSTILE:
                    self.sock.sendto(packet, target)
                    self.sent += 1
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def _metric(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def _output(sbc: SbcProcess) -> str:
    return "".join(
        path.read_text(errors="replace") if path.exists() else ""
        for path in (sbc.stdout_path, sbc.stderr_path)
    )


def test_hostile_stun_at_a_live_calls_relay_ports(sbc: SbcProcess, tmp_path: Path) -> None:
    carrier, pbx = RtpEndpoint(CARRIER_IP), RtpEndpoint(PBX_IP, ssrc=0x5678)
    attacker = Attacker()
    try:
        uas = Sipp(
            "uas_media",
            local_ip=PBX_IP,
            local_port=sbc.ports.pbx,
            workdir=tmp_path,
            keys={"rtp_ip": PBX_IP, "rtp_port": str(pbx.port)},
            timeout_s=30,
        )
        uac = Sipp(
            "uac_media",
            local_ip=CARRIER_IP,
            local_port=sbc.ports.carrier,
            remote=sbc.ext_uri,
            workdir=tmp_path,
            duration_ms=6000,  # the call holds while media and the attack run
            keys={"rtp_ip": CARRIER_IP, "rtp_port": str(carrier.port)},
            timeout_s=30,
        )
        uas.start()
        uac.start()
        a_side = sdp_media_address(uac.message_file, "SIP/2.0 200")  # what SIPp received
        b_side = sdp_media_address(uas.message_file, "INVITE ")
        targets = [a_side, (a_side[0], a_side[1] + 1), b_side, (b_side[0], b_side[1] + 1)]
        attack = threading.Thread(target=attacker.attack, args=(targets,))
        attack.start()
        pbx.send(b_side, PACKETS)
        carrier.send(a_side, PACKETS)
        carrier.wait_for(PACKETS)
        pbx.wait_for(PACKETS)
        attack.join(timeout=30)
        assert len(pbx.received) >= 0.99 * PACKETS, len(pbx.received)
        assert len(carrier.received) >= 0.99 * PACKETS, len(carrier.received)
        assert {r.ssrc for r in pbx.received} == {carrier.ssrc}
        # The peer's own endpoint still gets STUN answers: the relay is no black hole.
        request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        carrier.send_raw(a_side, [bytes(request)])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
            r.data[8:20] == request.transaction_id for r in carrier.received
        ):
            time.sleep(0.05)
        [answer] = [r.data for r in carrier.received if r.data[8:20] == request.transaction_id]
        assert stun.parse_message(answer).attributes["XOR-MAPPED-ADDRESS"] == (
            CARRIER_IP,
            carrier.port,
        )
        assert attacker.sent == ROUNDS * len(targets) * len(HOSTILE)
        time.sleep(0.5)  # anything still on its way back
        assert attacker.received == []
        assert uac.wait(30).returncode == 0
        assert uas.wait(30).returncode == 0
    finally:
        attacker.close()
        carrier.close()
        pbx.close()
    output = _output(sbc)
    assert "Traceback" not in output
    assert "Exception in callback" not in output
    headers = {"Authorization": f"Bearer {TOKEN}"}
    text = httpx.get(f"{sbc.admin_url}/metrics", headers=headers, timeout=5).text
    refused = _metric(text, 'sbc_media_packets_rejected_total{reason="stun_refused"}')
    assert refused >= 0.9 * attacker.sent, (refused, attacker.sent)  # loopback may drop a few
