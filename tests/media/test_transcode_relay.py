"""A transcoded stream through the relay: PCMU in on one side, Opus out on the other.

Leg A speaks PCMU (payload 0), leg B Opus (payload 96); the stream's
:class:`TranscodeSpec` says so. A 1 kHz tone is sent as real RTP into one
side and what arrives on the other side is checked as a far end would:
its RTP headers (the SBC's own SSRC, consecutive sequence numbers, the
destination clock's timestamps, marker on the first packet) and its audio,
decoded independently of the SBC's transcoder (FFmpeg's libopus through
PyAV for Opus, the G.711 formula for PCMU). Thresholds: frequency within
2 % of 1 kHz and SNR >= 15 dB (measured ~30 dB PCMU -> Opus, ~37 dB Opus ->
PCMU; the margin covers a packet lost on a busy loopback).
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct

import numpy as np
import numpy.typing as npt
import pytest
from audio_check import frequency, opus_decode, opus_encode, snr_db, tone, ulaw_decode, ulaw_encode
from media_sockets import free_port_pair
from test_relay_engine import address, collect, endpoint_socket, run

from sbc.media.control import (
    CodecEnd,
    Endpoint,
    SideSpec,
    SrtpKeys,
    StreamSpec,
    TranscodeDirection,
    TranscodeSpec,
)
from sbc.media.relay.engine import RelayEngine
from sbc.media.relay.workers import WorkerPool
from sbc.media.sdes import SUITES_BY_NAME, generate_key
from sbc.media.srtp import session

PCMU = CodecEnd("pcmu", 0, 20, (), 101)
OPUS = CodecEnd("opus", 96, 20, (), 110)
TRANSCODE = TranscodeSpec(TranscodeDirection(PCMU, OPUS), TranscodeDirection(OPUS, PCMU))
PACKETS = 75  # 1.5 s of 20 ms packets
SKIP_S = 0.2  # codec start-up and resampler delay
MIN_SNR_DB = 15.0
HEADER = struct.Struct("!BBHII")
SUITE = "AES_CM_128_HMAC_SHA1_80"


def rtp(pt: int, seq: int, timestamp: int, payload: bytes, ssrc: int) -> bytes:
    return HEADER.pack(0x80, pt, seq, timestamp, ssrc) + payload


def pcmu_packets() -> list[bytes]:
    pcm = tone(8000, PACKETS * 0.02)
    return [
        rtp(0, i, 1000 + i * 160, ulaw_encode(pcm[i * 160 : (i + 1) * 160]), 0xA)
        for i in range(PACKETS)
    ]


def opus_packets() -> list[bytes]:
    payloads = opus_encode(tone(48000, PACKETS * 0.02))[:PACKETS]
    return [rtp(96, i, 5000 + i * 960, p, 0xB) for i, p in enumerate(payloads)]


def spec_for(
    sbc_a: Endpoint,
    a: socket.socket,
    sbc_b: Endpoint,
    b: socket.socket,
    b_keys: SrtpKeys | None = None,
) -> StreamSpec:
    return StreamSpec(
        "call-1",
        0,
        SideSpec(sbc_a, address(a), allowed_sources=("127.0.0.1",)),
        SideSpec(sbc_b, address(b), allowed_sources=("127.0.0.2",), srtp=b_keys),
        transcode=TRANSCODE,
    )


class SrtpPeer:
    """Leg B as an SRTP peer (RFC 3711): its own key out, the SBC's key in."""

    def __init__(self) -> None:
        material = SUITES_BY_NAME[SUITE]
        self.sbc_key, self.peer_key = generate_key(material), generate_key(material)
        self.keys = SrtpKeys(SUITE, send_key=self.sbc_key, receive_key=self.peer_key)
        self.out = session(SUITE, self.peer_key, inbound=False)
        self.into = session(SUITE, self.sbc_key, inbound=True)


async def send_slowly(sock: socket.socket, to: Endpoint, packets: list[bytes]) -> None:
    """A few packets per yield: the relay decodes as they come, nothing piles up."""
    for i, packet in enumerate(packets):
        sock.sendto(packet, (to.host, to.port))
        if i % 4 == 3:
            await asyncio.sleep(0.003)


def check_headers(packets: list[bytes], pt: int, step: int, sent_ssrc: int) -> None:
    fields = [HEADER.unpack_from(p) for p in packets]
    assert all(second & 0x7F == pt for _, second, *_ in fields)
    assert [second >> 7 for _, second, *_ in fields][:2] == [1, 0]  # marker: first packet only
    ssrcs = {ssrc for *_, ssrc in fields}
    assert len(ssrcs) == 1
    assert ssrcs != {sent_ssrc}  # our own SSRC, not the sender's (RFC 3550 §8)
    sequences = [seq for _, _, seq, _, _ in fields]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(sequences))
    stamps = [ts for _, _, _, ts, _ in fields]
    assert all((b - a) % 2**32 == step for a, b in itertools.pairwise(stamps))


def check_tone(signal: npt.NDArray[np.float64], rate: int) -> None:
    audio = signal[int(rate * SKIP_S) :]
    assert len(audio) > rate // 2
    measured = frequency(audio, rate)
    assert abs(measured - 1000.0) <= 20.0, measured
    assert snr_db(audio, rate, measured) >= MIN_SNR_DB


async def pcmu_to_opus_and_back(
    control: RelayEngine | WorkerPool, srtp: SrtpPeer | None = None
) -> None:
    a, b = endpoint_socket("127.0.0.1"), endpoint_socket("127.0.0.2")
    sbc_a = Endpoint("127.0.0.1", free_port_pair("127.0.0.1"))
    sbc_b = Endpoint("127.0.0.2", free_port_pair("127.0.0.2"))
    try:
        control.update(spec_for(sbc_a, a, sbc_b, b, srtp.keys if srtp else None))
        await asyncio.sleep(0.2)  # a worker binds its sockets when the message arrives
        at_b = asyncio.ensure_future(collect(b, PACKETS))
        await send_slowly(a, sbc_a, pcmu_packets())
        opus = [data for data, _ in await at_b]
        if srtp is not None:  # authenticated and decrypted, or pylibsrtp raises
            opus = [srtp.into.unprotect(p) for p in opus]
        assert len(opus) >= PACKETS - 3
        check_headers(opus, 96, 960, 0xA)
        check_tone(opus_decode([p[12:] for p in opus]), 48000)

        at_a = asyncio.ensure_future(collect(a, PACKETS))
        from_b = opus_packets()
        if srtp is not None:
            from_b = [srtp.out.protect(p) for p in from_b]
        await send_slowly(b, sbc_b, from_b)
        pcmu = [data for data, _ in await at_a]
        assert len(pcmu) >= PACKETS - 3
        check_headers(pcmu, 0, 160, 0xB)
        check_tone(ulaw_decode(b"".join(p[12:] for p in pcmu)), 8000)
    finally:
        a.close()
        b.close()


def test_pcmu_tone_arrives_as_opus_and_opus_as_pcmu() -> None:
    async def scenario() -> None:
        engine = RelayEngine()
        try:
            await pcmu_to_opus_and_back(engine)
            stats = engine.stats("call-1")[0]
            assert stats.a_to_b.packets == PACKETS  # counted as received
            assert stats.b_to_a.packets == PACKETS
        finally:
            engine.close()

    run(scenario)


def test_transcoding_in_a_worker_process() -> None:
    async def scenario() -> None:
        pool = WorkerPool(1)
        await pool.start()
        try:
            await pcmu_to_opus_and_back(pool)
        finally:
            await pool.close()

    run(scenario)


def test_transcoding_with_srtp_on_the_opus_leg() -> None:
    async def scenario() -> None:
        engine = RelayEngine()
        try:
            await pcmu_to_opus_and_back(engine, SrtpPeer())
            assert engine.stats("call-1")[0].b_to_a.srtp_failed == 0
        finally:
            engine.close()

    run(scenario)


def test_rtcp_of_a_transcoded_stream_is_counted_not_relayed() -> None:
    async def scenario() -> None:
        engine = RelayEngine()
        a, b = endpoint_socket("127.0.0.1"), endpoint_socket("127.0.0.2")
        sbc_a = Endpoint("127.0.0.1", free_port_pair("127.0.0.1"))
        sbc_b = Endpoint("127.0.0.2", free_port_pair("127.0.0.2"))
        try:
            engine.update(spec_for(sbc_a, a, sbc_b, b))
            at_b = asyncio.ensure_future(collect(b, 4, timeout=1.0))
            # RFC 3550 §6.4.1 sender report (no blocks) to A's RTCP port, then audio.
            sender_report = struct.pack("!BBHIIIIII", 0x80, 200, 6, 0xA, 1, 2, 3, 4, 5)
            a.sendto(sender_report, (sbc_a.host, sbc_a.port + 1))
            await send_slowly(a, sbc_a, pcmu_packets()[:3])
            got = [data for data, _ in await at_b]
            assert [p[1] & 0x7F for p in got] == [96, 96, 96]  # audio only, no SR
            assert engine.stats("call-1")[0].a_to_b.rtcp_packets == 1
        finally:
            engine.close()
            a.close()
            b.close()

    run(scenario)


def test_telephone_events_cross_with_the_other_legs_payload_type() -> None:
    async def scenario() -> None:
        engine = RelayEngine()
        a, b = endpoint_socket("127.0.0.1"), endpoint_socket("127.0.0.2")
        sbc_a = Endpoint("127.0.0.1", free_port_pair("127.0.0.1"))
        sbc_b = Endpoint("127.0.0.2", free_port_pair("127.0.0.2"))
        try:
            engine.update(spec_for(sbc_a, a, sbc_b, b))
            at_b = asyncio.ensure_future(collect(b, 5))
            audio = pcmu_packets()[:2]
            # RFC 4733 §2.3: digit 5, end bit clear, volume 10, duration 160 then 320.
            events = [
                rtp(101 | 0x80, 2, 1320, bytes((5, 10, 0, 160)), 0xA),
                rtp(101, 3, 1320, bytes((5, 10, 1, 64)), 0xA),
                rtp(13, 4, 1480, b"\x40", 0xA),  # comfort noise: Opus cannot carry it
            ]
            await send_slowly(a, sbc_a, [*audio, *events])
            got = [data for data, _ in await at_b]
            kinds = [(p[1] & 0x7F, p[1] >> 7) for p in got]
            assert kinds == [(96, 1), (96, 0), (110, 1), (110, 0)]
            # Durations rescaled from the 8 kHz clock to Opus's 48 kHz (RFC 4733 §2.5.1.4).
            assert [int.from_bytes(p[14:16], "big") for p in got[2:]] == [960, 1920]
            assert got[2][12] == 5
        finally:
            engine.close()
            a.close()
            b.close()

    run(scenario)


def test_the_payload_follows_csrcs_header_extension_and_padding() -> None:
    from sbc.media.relay.rtp import rtp_payload

    plain = HEADER.pack(0x80, 0, 1, 160, 0xA) + b"audio"
    assert rtp_payload(plain) == b"audio"
    # RFC 3550 §5.3.1 extension (one word), two CSRCs, three octets of padding (§5.1).
    csrcs = struct.pack("!II", 1, 2)
    extension = struct.pack("!HH", 0xBEDE, 1) + b"\x10\xaa\x00\x00"
    padded = HEADER.pack(0x80 | 0x20 | 0x10 | 2, 0, 1, 160, 0xA) + csrcs + extension
    assert rtp_payload(padded + b"audio" + b"\x00\x00\x03") == b"audio"
    with pytest.raises(ValueError, match="extension"):  # cut extension: not decoded
        rtp_payload(HEADER.pack(0x90, 0, 1, 160, 0xA) + b"\xbe")
