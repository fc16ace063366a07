"""DTLS-SRTP against a real WebRTC stack: aiortc's RTCPeerConnection offers
UDP/TLS/RTP/SAVPF with ICE to MediaAnchor + RelayEngine; the other leg is a
plain RTP socket. The handshake must complete and audio flow both ways.

Loopback only: aioice gathers host candidates on 127.0.0.1, the SBC's legs
bind 127.0.0.1 (A) and 127.0.0.2 (B). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import math
import socket
import struct

import aioice.ice
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack
from av import AudioFrame
from media_sockets import free_port_pair

from sbc.media.anchor import MediaAnchor
from sbc.media.interface import LegMedia
from sbc.media.ports import PortPool
from sbc.media.relay.engine import RelayEngine
from sbc.media.transcode.g711 import linear_to_ulaw, ulaw_to_linear
from sbc.sip.sdp import parse_sdp

TONE_HZ = 440.0
RATE = 8000
SAMPLES = 160  # 20 ms
WAIT = 10.0
PACKETS = 25


class ToneTrack(AudioStreamTrack):
    """aiortc's paced audio track, but a 440 Hz tone instead of silence."""

    async def recv(self) -> AudioFrame:
        frame = await super().recv()
        start = int(frame.pts)
        tone = (8000 * np.sin(2 * np.pi * TONE_HZ * (np.arange(SAMPLES) + start) / RATE)).astype(
            "<i2"
        )
        frame.planes[0].update(tone.tobytes())
        return frame


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda **_: ["127.0.0.1"])


def _pair(host: str) -> tuple[int, int]:
    port = free_port_pair(host)
    return port, port + 1


def plain_answer(port: int, mux: bool) -> bytes:
    lines = [
        "v=0",
        "o=plain 1 1 IN IP4 127.0.0.1",
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        f"m=audio {port} RTP/AVP 0",
        "a=rtpmap:0 PCMU/8000",
    ]
    if mux:
        lines.append("a=rtcp-mux")
    return ("\r\n".join(lines) + "\r\n").encode()


def dominant_hz(samples: list[int]) -> float:
    spectrum = np.abs(np.fft.rfft(np.array(samples, dtype=float)))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum)) * RATE / len(samples)


def tone_packet(seq: int, ssrc: int = 0x1234ABCD) -> bytes:
    header = struct.pack("!BBHII", 0x80, 0, seq, seq * SAMPLES, ssrc)
    payload = bytes(
        linear_to_ulaw(int(8000 * math.sin(2 * math.pi * TONE_HZ * (seq * SAMPLES + i) / RATE)))
        for i in range(SAMPLES)
    )
    return header + payload


async def receive_rtp(sock: socket.socket, count: int) -> list[bytes]:
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    while len(got) < count:
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), WAIT)
        if len(data) >= 12 and data[0] >> 6 == 2 and not 200 <= data[1] <= 206:
            got.append(data)  # RTP (RTCP from aiortc crosses too)
    return got


def payload_of(packet: bytes) -> bytes:
    count = packet[0] & 0x0F
    offset = 12 + 4 * count
    if packet[0] & 0x10:  # header extension (RFC 3550 §5.3.1)
        length = struct.unpack_from("!H", packet, offset + 2)[0]
        offset += 4 + 4 * length
    return packet[offset:]


@pytest.mark.usefixtures("loopback_only")
@pytest.mark.parametrize("plain_mux", [True, False], ids=["plain-muxed", "plain-rtcp-port"])
def test_dtls_srtp_with_aiortc_and_audio_to_a_plain_leg(plain_mux: bool) -> None:
    """The plain leg may or may not do rtcp-mux: the WebRTC leg always gets it."""
    asyncio.run(asyncio.wait_for(_scenario(plain_mux), 60))


async def _scenario(plain_mux: bool) -> None:
    engine = RelayEngine(sweep_interval=0.2)
    anchor = MediaAnchor(engine, PortPool(), first_session_id=1)
    leg_a = LegMedia("127.0.0.1", "127.0.0.1", _pair("127.0.0.1"), peer_ip="127.0.0.1")
    leg_b = LegMedia("127.0.0.2", "127.0.0.2", _pair("127.0.0.2"), peer_ip="127.0.0.1")
    anchor.open("call", leg_a, leg_b)
    pc = RTCPeerConnection()
    received: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
    pc.on("track", received.put_nowait)
    transceiver = pc.addTransceiver(ToneTrack(), direction="sendrecv")
    pcmu = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/PCMU"]
    transceiver.setCodecPreferences(pcmu)
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    plain.bind(("127.0.0.1", 0))
    plain.setblocking(False)
    try:
        await pc.setLocalDescription(await pc.createOffer())
        to_b = anchor.offer("call", "a", "b", pc.localDescription.sdp.encode())
        b_media = parse_sdp(to_b).media[0]
        assert b_media.proto == "RTP/AVP"
        assert b_media.attribute("fingerprint") is None
        assert b_media.attribute("setup") is None

        to_a = anchor.answer("call", "b", "a", plain_answer(plain.getsockname()[1], plain_mux))
        a_media = parse_sdp(to_a).media[0]
        assert a_media.proto == "UDP/TLS/RTP/SAVPF"
        assert a_media.attribute_values("fingerprint") == [f"sha-256 {anchor.fingerprint}"]
        assert a_media.attribute_values("setup") == ["passive"]
        assert a_media.rtcp_mux
        assert len(a_media.attribute_values("candidate")) == 1  # RTP component only
        await pc.setRemoteDescription(RTCSessionDescription(to_a.decode(), "answer"))

        # A (aiortc, DTLS-SRTP) -> B (plain): decrypted PCMU with the tone in it.
        packets = await receive_rtp(plain, PACKETS)
        assert {p[1] & 0x7F for p in packets} == {0}
        samples = [ulaw_to_linear(b) for p in packets[-10:] for b in payload_of(p)]
        assert max(abs(s) for s in samples) > 1000  # not silence, not noise from ciphertext
        assert abs(dominant_hz(samples) - TONE_HZ) < 20
        stats = engine.stats("call")[0]
        assert (stats.dtls_a, stats.dtls_b) == ("connected", "")
        assert stats.a_to_b.srtp_failed == 0
        spec_b = engine._sessions["call"][0].b
        assert (spec_b.rtcp is None) == plain_mux

        # B (plain) -> A: aiortc decrypts and decodes our SRTP into audio frames.
        sbc_b = ("127.0.0.2", b_media.port)
        track = await asyncio.wait_for(received.get(), WAIT)
        for seq in range(PACKETS):
            plain.sendto(tone_packet(seq), sbc_b)
        frame = await asyncio.wait_for(track.recv(), WAIT)
        pcm = np.frombuffer(bytes(frame.planes[0]), dtype="<i2")
        assert int(np.abs(pcm).max()) > 1000
        assert engine.stats("call")[0].b_to_a.packets >= 1
    finally:
        await pc.close()
        plain.close()
        anchor.delete("call")
        engine.close()


@pytest.mark.usefixtures("loopback_only")
def test_a_fingerprint_that_does_not_match_aiortc_keeps_its_media_out() -> None:
    """The offer's fingerprint is not aiortc's certificate (a MITM would look the
    same): our end fails, aiortc's SRTP is dropped and counted, nothing reaches B."""
    asyncio.run(asyncio.wait_for(_mismatch(), 60))


async def _mismatch() -> None:
    engine = RelayEngine(sweep_interval=0.2)
    anchor = MediaAnchor(engine, PortPool(), first_session_id=1)
    leg_a = LegMedia("127.0.0.1", "127.0.0.1", _pair("127.0.0.1"), peer_ip="127.0.0.1")
    leg_b = LegMedia("127.0.0.2", "127.0.0.2", _pair("127.0.0.2"), peer_ip="127.0.0.1")
    anchor.open("call", leg_a, leg_b)
    pc = RTCPeerConnection()
    pc.addTransceiver(ToneTrack(), direction="sendrecv")
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    plain.bind(("127.0.0.1", 0))
    plain.setblocking(False)
    try:
        await pc.setLocalDescription(await pc.createOffer())
        lines = pc.localDescription.sdp.splitlines()
        forged = [
            "a=fingerprint:sha-256 " + ":".join(["5A"] * 32)
            if line.startswith("a=fingerprint:")
            else line
            for line in lines
        ]
        offer = ("\r\n".join(dict.fromkeys(forged)) + "\r\n").encode()
        anchor.offer("call", "a", "b", offer)
        to_a = anchor.answer("call", "b", "a", plain_answer(plain.getsockname()[1], True))
        await pc.setRemoteDescription(RTCSessionDescription(to_a.decode(), "answer"))
        for _ in range(200):  # bounded: until aiortc's SRTP has been refused a while
            stats = engine.stats("call")[0]
            if stats.dtls_a == "failed" and stats.a_to_b.srtp_failed >= 10:
                break
            await asyncio.sleep(0.05)
        assert stats.dtls_a == "failed"
        assert stats.a_to_b.srtp_failed >= 10
        assert stats.a_to_b.packets == 0
        with pytest.raises(BlockingIOError):
            plain.recv(2048)
        assert anchor.stats("call").extra["dtls_failed"] == 1.0
    finally:
        await pc.close()
        plain.close()
        anchor.delete("call")
        engine.close()
