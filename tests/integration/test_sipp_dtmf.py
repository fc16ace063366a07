"""DTMF interworking end to end: the carrier trunk speaks RFC 4733, the PBX
trunk (``dtmf: info``) SIP INFO. SIPp does the signalling on both sides, the
test's RTP endpoints stand for the media; every assertion is about what a far
end received (SIPp's message log, the endpoint's packets)."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import CARRIER_IP, PBX_IP, SbcProcess, Sipp
from rtp import RTP_HEADER, RtpEndpoint, sdp_media_address

pytestmark = pytest.mark.integration

CARRIER_EVENT_PT = 101  # what uac_media.xml offers
SSRC = 0xCA11


@pytest.fixture(scope="module")
def dtmf_sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    sbc = SbcProcess(
        tmp_path_factory.mktemp("sbc-dtmf"),
        extra_sbc_yaml="calls: {shutdown_grace_s: 2}\nmedia: {workers: 1}\n",
    )
    trunks = (sbc.policies / "trunks.yaml").read_text()
    sbc.extra_files["trunks.yaml"] = trunks.replace("name: pbx, ", "name: pbx, dtmf: info, ")
    sbc.write_policies()
    sbc.start()
    yield sbc
    sbc.stop()


def event_packets(seq: int, timestamp: int, event: int) -> list[bytes]:
    """One digit as a phone sends it (RFC 4733 §2.5): start with the marker,
    updates, three end packets, all with the event's timestamp."""
    packets = []
    for i, duration in enumerate((160, 320, 480, 640)):
        marker = 0x80 if i == 0 else 0
        header = RTP_HEADER.pack(0x80, marker | CARRIER_EVENT_PT, seq + i, timestamp, SSRC)
        packets.append(header + struct.pack("!BBH", event, 10, duration))
    for i in range(3):
        header = RTP_HEADER.pack(0x80, CARRIER_EVENT_PT, seq + 4 + i, timestamp, SSRC)
        packets.append(header + struct.pack("!BBH", event, 0x80 | 10, 800))
    return packets


def audio(seq: int) -> bytes:
    return RTP_HEADER.pack(0x80, 0, seq, seq * 160, SSRC) + b"\xff" * 160


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def info_bodies(uas: Sipp) -> list[str]:
    return [m.body for m in uas.result().requests("INFO", "received")]


def test_digits_cross_between_rfc4733_events_and_sip_info(
    dtmf_sbc: SbcProcess, tmp_path: Path
) -> None:
    carrier, pbx = RtpEndpoint(CARRIER_IP, ssrc=SSRC), RtpEndpoint(PBX_IP, ssrc=0x5678)
    uas = Sipp(
        "uas_dtmf_info",
        local_ip=PBX_IP,
        local_port=dtmf_sbc.ports.pbx,
        workdir=tmp_path,
        keys={"rtp_ip": PBX_IP, "rtp_port": str(pbx.port)},
        timeout_s=40,
    )
    uac = Sipp(
        "uac_media",
        local_ip=CARRIER_IP,
        local_port=dtmf_sbc.ports.carrier,
        remote=dtmf_sbc.ext_uri,
        workdir=tmp_path,
        duration_ms=8000,  # the digits cross during this hold
        keys={"rtp_ip": CARRIER_IP, "rtp_port": str(carrier.port)},
        timeout_s=40,
    )
    try:
        uas.start()
        uac.start()
        to_sbc = sdp_media_address(uac.message_file, "SIP/2.0 200")
        # carrier -> PBX: audio, "1", audio, "#", audio
        packets = [audio(1), *event_packets(2, 160, 1), audio(9)]
        packets += [*event_packets(10, 8000, 11), audio(17)]
        carrier.send_raw(to_sbc, packets)
        assert wait_until(lambda: len(info_bodies(uas)) >= 2), info_bodies(uas)
        # PBX -> carrier: INFO 7 and 9 become events; wait for both end triples
        assert wait_until(lambda: len(ends(carrier)) >= 6), [r.data.hex() for r in carrier.received]
        uac_result, uas_result = uac.wait(30), uas.wait(30)
        assert uac_result.ok, uac_result.describe()
        assert uas_result.ok, uas_result.describe()

        # SDP: the PBX never saw telephone-event; the carrier got its own 101 back
        [invite] = uas_result.requests("INVITE", "received")
        assert "telephone-event" not in invite.body
        ok = next(m for m in uac_result.received if m.status == 200 and m.cseq_method == "INVITE")
        assert "a=rtpmap:101 telephone-event/8000" in ok.body

        # RFC 4733 -> INFO: one INFO per digit, the Cisco body, in the PBX's dialog
        infos = uas_result.requests("INFO", "received")
        assert [m.header("Content-Type") for m in infos] == ["application/dtmf-relay"] * 2
        assert [signal(m.body) for m in infos] == ["1", "#"]
        assert all(m.call_id == invite.call_id for m in infos)
        assert {r.payload_type for r in pbx.received} == {0}  # no event reached the PBX
        assert len(pbx.received) == 3

        # the PBX's INFOs were answered 200 by the SBC, not relayed to the carrier
        assert uas_result.statuses("INFO") == [200, 200]
        assert uac_result.requests("INFO") == []

        # INFO -> RFC 4733: well-formed events towards the carrier
        events = [parse_event(r.data) for r in carrier.received if r.payload_type == 101]
        by_timestamp: dict[int, list[tuple[bool, int, int, bool, int]]] = {}
        for marker, timestamp, event, end, duration in events:
            by_timestamp.setdefault(timestamp, []).append((marker, timestamp, event, end, duration))
        assert len(by_timestamp) == 2
        digits = []
        for packets_of_event in sorted(by_timestamp.values(), key=lambda p: p[0][1]):
            assert packets_of_event[0][0]  # the start packet has the marker bit
            assert not any(p[0] for p in packets_of_event[1:])
            end_packets = [p for p in packets_of_event if p[3]]
            assert len(end_packets) == 3
            digits.append((packets_of_event[0][2], end_packets[0][4]))
        assert digits == [(7, 200 * 8), (9, 160 * 8)]
        assert len({r.ssrc for r in carrier.received if r.payload_type == 101}) == 1
    finally:
        carrier.close()
        pbx.close()
        uac.stop()
        uas.stop()


def ends(endpoint: RtpEndpoint) -> list[bytes]:
    return [r.data for r in endpoint.received if r.payload_type == 101 and r.data[13] & 0x80]


def parse_event(packet: bytes) -> tuple[bool, int, int, bool, int]:
    """(marker, timestamp, event, end, duration), read by hand (RFC 3550 §5.1, RFC 4733 §2.3)."""
    first, second, _seq, timestamp, _ssrc = RTP_HEADER.unpack_from(packet)
    assert first == 0x80
    assert len(packet) == 16
    event, flags, duration = struct.unpack_from("!BBH", packet, 12)
    assert flags & 0x3F == 10  # volume
    return bool(second & 0x80), timestamp, event, bool(flags & 0x80), duration


def signal(body: str) -> str:
    fields = dict(line.split("=", 1) for line in body.splitlines() if "=" in line)
    assert fields["Duration"] == "100"
    return fields["Signal"]
