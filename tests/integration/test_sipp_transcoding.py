"""Transcoding in real calls: the carrier trunk allows only PCMU, the PBX trunk only Opus.

SIPp does the signalling (the carrier offers PCMU, PCMA and telephone-event,
the PBX answers Opus, the codec the SBC added to its offer; and the other
way round, the PBX offers only Opus and the carrier answers the PCMU the SBC
added); the test's RTP
endpoints send a 1 kHz tone each way and check what the other end received,
decoded independently (tests/integration/audio.py): frequency within 2 % and
SNR >= 15 dB. A second SBC with transcoding capacity 0 refuses such a call
with 488 before any INVITE reaches the PBX.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from audio_check import frequency, opus_decode, opus_encode, snr_db, tone, ulaw_decode, ulaw_encode
from harness import CARRIER_IP, PBX_IP, SbcProcess, Sipp
from rtp import Received, RtpEndpoint, sdp_media_address

pytestmark = pytest.mark.integration

PACKETS = 75  # 1.5 s of 20 ms packets each way
MIN_SNR_DB = 15.0
SKIP_S = 0.2  # codec start-up
PBX_OPUS_ONLY = "codecs: {allow: [opus], transcode: true}"
CARRIER_PCMU_ONLY = "codecs: {allow: [PCMU], transcode: true}"


def transcoding_sbc(workdir: Path, capacity: int) -> SbcProcess:
    sbc = SbcProcess(
        workdir,
        extra_sbc_yaml=(
            "calls: {shutdown_grace_s: 2}\nmedia: {workers: 1}\n"
            f"transcoding: {{max_sessions: {capacity}}}\n"
        ),
        media_pairs=8,
    )
    p = sbc.ports
    sbc.extra_files["trunks.yaml"] = (
        "trunks:\n"
        f"  - {{name: carrier, interface: external, address: {CARRIER_IP}, port: {p.carrier}, "
        f"{CARRIER_PCMU_ONLY}}}\n"
        f"  - {{name: pbx, interface: internal, address: {PBX_IP}, port: {p.pbx}, "
        f"{PBX_OPUS_ONLY}}}\n"
    )
    sbc.write_policies()
    return sbc


@pytest.fixture(scope="module")
def transcoding(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    sbc = transcoding_sbc(tmp_path_factory.mktemp("sbc-transcoding"), 10)
    sbc.start()
    yield sbc
    sbc.stop()


@pytest.fixture(scope="module")
def no_capacity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    sbc = transcoding_sbc(tmp_path_factory.mktemp("sbc-no-transcoding"), 0)
    sbc.start()
    yield sbc
    sbc.stop()


def in_order(received: list[Received]) -> list[Received]:
    return sorted(received, key=lambda r: r.seq)


def check_tone(signal: npt.NDArray[np.float64], rate: int) -> None:
    audio = signal[int(rate * SKIP_S) :]
    assert len(audio) > rate // 2, len(audio)
    measured = frequency(audio, rate)
    assert abs(measured - 1000.0) <= 20.0, measured
    assert snr_db(audio, rate, measured) >= MIN_SNR_DB


def ulaw_tone() -> list[bytes]:
    pcm = tone(8000, PACKETS * 0.02)
    return [ulaw_encode(pcm[i * 160 : (i + 1) * 160]) for i in range(PACKETS)]


def opus_tone() -> list[bytes]:
    return opus_encode(tone(48000, PACKETS * 0.02))[:PACKETS]


def check_call(
    uac: Sipp, uas: Sipp, caller: RtpEndpoint, callee: RtpEndpoint, caller_speaks_opus: bool
) -> None:
    """Both ends send a tone to the address their SDP names; each hears the other's."""
    from_caller = sdp_media_address(uac.message_file, "SIP/2.0 200")
    from_callee = sdp_media_address(uas.message_file, "INVITE ")
    for sender, to, receiver, opus in (
        (caller, from_caller, callee, caller_speaks_opus),
        (callee, from_callee, caller, not caller_speaks_opus),
    ):
        sender.send_payloads(to, opus_tone() if opus else ulaw_tone(), 960 if opus else 160)
        receiver.wait_for(PACKETS - 1)
        heard = in_order(receiver.received)
        assert len(heard) >= PACKETS - 3, len(heard)
        assert {r.payload_type for r in heard} == {receiver.payload_type}
        if opus:  # the receiver speaks G.711
            check_tone(ulaw_decode(b"".join(r.payload for r in heard)), 8000)
        else:
            check_tone(opus_decode([r.payload for r in heard]), 48000)
    assert uac.wait(20).returncode == 0
    assert uas.wait(20).returncode == 0


def start_call(
    sbc: SbcProcess,
    tmp_path: Path,
    scenarios: tuple[str, str],
    caller: RtpEndpoint,
    callee: RtpEndpoint,
    *,
    outbound: bool = False,
) -> tuple[Sipp, Sipp]:
    ports = sbc.ports
    uas = Sipp(
        scenarios[1],
        local_ip=callee.ip,
        local_port=ports.carrier if outbound else ports.pbx,
        workdir=tmp_path,
        keys={"rtp_ip": callee.ip, "rtp_port": str(callee.port)},
        timeout_s=30,
    )
    uac = Sipp(
        scenarios[0],
        local_ip=caller.ip,
        local_port=ports.pbx if outbound else ports.carrier,
        remote=sbc.int_uri if outbound else sbc.ext_uri,
        workdir=tmp_path,
        duration_ms=6000,  # the media flows during this hold
        keys={"rtp_ip": caller.ip, "rtp_port": str(caller.port)},
        timeout_s=30,
    )
    uas.start()
    uac.start()
    return uac, uas


def test_g711_carrier_and_opus_pbx_hear_each_others_tone(
    transcoding: SbcProcess, tmp_path: Path
) -> None:
    carrier = RtpEndpoint(CARRIER_IP, payload_type=0)
    pbx = RtpEndpoint(PBX_IP, ssrc=0x5678, payload_type=96)
    try:
        scenarios = ("uac_media", "uas_media_opus")
        uac, uas = start_call(transcoding, tmp_path, scenarios, carrier, pbx)
        check_call(uac, uas, carrier, pbx, caller_speaks_opus=False)
        invite = next(m for m in uas.result().received if m.method == "INVITE")
        assert "opus/48000/2" in invite.raw
        assert "PCMU" not in invite.raw  # the PBX trunk may see only Opus
        answer = next(m for m in uac.result().received if m.status == 200)
        assert "m=audio" in answer.raw
        assert "opus" not in answer.raw  # the carrier sees its own codec
    finally:
        carrier.close()
        pbx.close()


def test_opus_pbx_calling_a_pcmu_only_carrier(transcoding: SbcProcess, tmp_path: Path) -> None:
    pbx = RtpEndpoint(PBX_IP, ssrc=0x5678, payload_type=111)
    carrier = RtpEndpoint(CARRIER_IP, payload_type=0)
    try:
        scenarios = ("uac_media_opus", "uas_media")
        uac, uas = start_call(transcoding, tmp_path, scenarios, pbx, carrier, outbound=True)
        check_call(uac, uas, pbx, carrier, caller_speaks_opus=True)
        invite = next(m for m in uas.result().received if m.method == "INVITE")
        assert "opus" not in invite.raw  # the carrier trunk allows only PCMU
        assert "a=rtpmap:0 PCMU/8000" in invite.raw
    finally:
        carrier.close()
        pbx.close()


def test_no_transcoding_capacity_is_488_and_no_invite_reaches_the_pbx(
    no_capacity: SbcProcess, tmp_path: Path
) -> None:
    pbx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pbx.bind((PBX_IP, no_capacity.ports.pbx))
    pbx.setblocking(False)
    try:
        caller = Sipp(
            "uac_failure",
            local_ip=CARRIER_IP,
            local_port=no_capacity.ports.carrier,
            remote=no_capacity.ext_uri,
            timeout_s=15,
            duration_ms=100,
            workdir=tmp_path,
        )
        result = caller.start(wait_bind=False).wait()
        assert result.ok, result.describe()
        assert [s for s in result.statuses("INVITE") if s >= 200] == [488]
        # The refusal comes before any B-leg: an INVITE sent first would be queued here.
        with pytest.raises(BlockingIOError):
            pbx.recv(65536)
    finally:
        pbx.close()
