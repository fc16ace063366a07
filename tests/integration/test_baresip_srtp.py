"""SRTP with a real peer: baresip (SDES-SRTP mandatory, or DTLS-SRTP) calls through
the SBC to a plain-RTP PBX, and each side gets the other's tone in its own format.

- baresip's 1 kHz tone leaves it as SRTP; the PBX side must receive plain PCMU
  that decodes to 1 kHz (the SBC decrypted it), in an INVITE without crypto.
- The PBX's 600 Hz tone leaves it as plain RTP; baresip must decode 600 Hz
  from what it received (the SBC encrypted it with the key it gave baresip,
  and baresip authenticated and decrypted it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from audio_check import frequency, snr_db, tone, ulaw_decode, ulaw_encode
from baresip import BARESIP, Baresip
from harness import PBX_IP, SBC_INT_IP, SbcProcess, Sipp, TrunkDef
from rtp import RtpEndpoint, sdp_media_address

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(BARESIP is None, reason="baresip is not installed (ops/setup.sh --dev)"),
]

PHONE_IP = "127.0.0.11"
PHONE_TONE_HZ = 1000
PBX_TONE_HZ = 600
CALL_SECONDS = 6
FRAME = 160  # 20 ms of 8 kHz PCMU

#: What baresip logs once its media is keyed each way.
SECURED_BY = {
    "srtp-mand": "SRTP is Enabled (cryptosuite=",
    "dtls_srtp": "DTLS-SRTP complete (audio/RTP)",
}

ROUTES = (
    "routes:\n"
    "  - {name: phone-to-pbx, from_trunk: webphone, to: [pbx]}\n"
    "  - {name: pbx-to-carrier, from_trunk: pbx, to: [carrier]}\n"
)


@pytest.fixture(scope="module")
def sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    process = SbcProcess(
        tmp_path_factory.mktemp("sbc-srtp"),
        routes_yaml=ROUTES,
        extra_trunks=[
            TrunkDef("webphone", "external", PHONE_IP, transport="udp", extra="srtp: required")
        ],
        media_pairs=20,
        # baresip advertises its eth0 address in SDP and sends from 127.0.0.1:
        # a phone behind NAT, which only latching on any source serves.
        extra_sbc_yaml="calls: {shutdown_grace_s: 2}\nmedia: {latch_any_source: true}\n",
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.parametrize(
    "mediaenc",
    [
        pytest.param("srtp-mand", id="sdes"),  # a=crypto keys (RFC 4568)
        pytest.param("dtls_srtp", id="dtls"),  # DTLS-SRTP handshake on the media port (RFC 5764)
    ],
)
def test_srtp_phone_and_plain_pbx_hear_each_other(
    sbc: SbcProcess, tmp_path: Path, mediaenc: str
) -> None:
    pbx_media = RtpEndpoint(PBX_IP, ssrc=0x600D)
    phone_port = sbc.trunk("webphone")[1]
    phone = Baresip(tmp_path, PHONE_IP, phone_port, mediaenc=mediaenc, tone_hz=PHONE_TONE_HZ)
    callee = Sipp(
        "uas_media",
        local_ip=PBX_IP,
        local_port=sbc.ports.pbx,
        workdir=tmp_path,
        keys={"rtp_ip": PBX_IP, "rtp_port": str(pbx_media.port)},
        timeout_s=30,
    ).start()
    try:
        phone.dial(f"sip:service@{sbc.ext[0]}:{sbc.ext[1]}", CALL_SECONDS)
        to_sbc = sdp_media_address(callee.message_file, "INVITE ")
        pcm = tone(8000, CALL_SECONDS - 2.5, PBX_TONE_HZ)
        frames = [ulaw_encode(pcm[i : i + FRAME]) for i in range(0, len(pcm), FRAME)]
        pbx_media.send_payloads(to_sbc, frames, FRAME, interval=0.02)
        phone.wait(CALL_SECONDS + 10)
        result = callee.wait(15)
    finally:
        phone.stop()
        callee.stop()
        pbx_media.close()
    assert result.ok, result.describe() + phone.output()
    assert SECURED_BY[mediaenc] in phone.output(), phone.output()  # baresip's own word

    received = [m for m in result.messages if m.direction == "received"]
    invite = next(m for m in received if m.start_line.startswith("INVITE"))
    assert " RTP/AVP " in invite.body, invite.raw
    assert "a=crypto" not in invite.body, invite.raw
    assert "a=fingerprint" not in invite.body, invite.raw  # keys never cross legs

    # What the plain side got: PCMU from the SBC, decrypted, carrying the phone's tone.
    pcmu = [r.payload for r in pbx_media.received if r.payload_type == 0]
    assert {r.source[0] for r in pbx_media.received} == {SBC_INT_IP}
    assert len(pcmu) >= 100, f"{len(pcmu)} PCMU packets reached the PBX\n{phone.output()}"
    heard = np.concatenate([ulaw_decode(p) for p in pcmu[10:]])  # past the ramp-up
    measured = frequency(heard, 8000)
    assert abs(measured - PHONE_TONE_HZ) <= 0.02 * PHONE_TONE_HZ, measured
    assert snr_db(heard, 8000, measured) > 30

    # What baresip decoded from the SRTP the SBC sent it: the PBX's tone.
    audio, rate = phone.received_audio()
    loud = np.flatnonzero(np.abs(audio) > 1000)
    assert len(loud) > rate, f"baresip decoded {len(loud)} loud samples\n{phone.output()}"
    # the span the PBX played (its first and last 100 ms left out: ramp, jitter buffer)
    played = audio[loud[0] + rate // 10 : loud[-1] - rate // 10]
    signal = played.astype(np.float64)
    measured = frequency(signal, rate)
    assert abs(measured - PBX_TONE_HZ) <= 0.02 * PBX_TONE_HZ, measured
    assert snr_db(signal, rate, measured) > 30
