"""Media through the SBC: SIPp does the signalling, the test's own RTP
endpoints send and receive real RTP through the relay (both directions)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import CARRIER_IP, PBX_IP, SBC_EXT_IP, SBC_INT_IP, SbcProcess, Sipp, free_port
from rtp import RtpEndpoint, sdp_media_address

pytestmark = pytest.mark.integration

PACKETS = 150  # at 10 ms: 1.5 s of media each way


@pytest.fixture(scope="module")
def anchored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    sbc = SbcProcess(
        tmp_path_factory.mktemp("sbc-media"),
        extra_sbc_yaml="calls: {shutdown_grace_s: 2}\nmedia: {workers: 1}\n",
    )
    sbc.start()
    yield sbc
    sbc.stop()


def _call(
    sbc: SbcProcess, tmp_path: Path, carrier_sdp: tuple[str, int], pbx_sdp: tuple[str, int]
) -> tuple[Sipp, Sipp]:
    uas = Sipp(
        "uas_media",
        local_ip=PBX_IP,
        local_port=sbc.ports.pbx,
        workdir=tmp_path,
        keys={"rtp_ip": pbx_sdp[0], "rtp_port": str(pbx_sdp[1])},
        timeout_s=30,
    )
    uac = Sipp(
        "uac_media",
        local_ip=CARRIER_IP,
        local_port=sbc.ports.carrier,
        remote=sbc.ext_uri,
        workdir=tmp_path,
        duration_ms=4000,  # the media flows during this hold
        keys={"rtp_ip": carrier_sdp[0], "rtp_port": str(carrier_sdp[1])},
        timeout_s=30,
    )
    uas.start()
    uac.start()
    return uac, uas


def _exchange(
    carrier: RtpEndpoint, pbx: RtpEndpoint, uac: Sipp, uas: Sipp
) -> tuple[tuple[str, int], tuple[str, int]]:
    """Send both ways to the addresses each side's SDP names; return them."""
    to_sbc_from_carrier = sdp_media_address(uac.message_file, "SIP/2.0 200")
    to_sbc_from_pbx = sdp_media_address(uas.message_file, "INVITE ")
    pbx.send(to_sbc_from_pbx, PACKETS)  # the callee talks first (early media-like)
    carrier.send(to_sbc_from_carrier, PACKETS)
    carrier.wait_for(PACKETS)
    pbx.wait_for(PACKETS)
    return to_sbc_from_carrier, to_sbc_from_pbx


def test_two_way_rtp_through_the_relay(anchored: SbcProcess, tmp_path: Path) -> None:
    carrier, pbx = RtpEndpoint(CARRIER_IP), RtpEndpoint(PBX_IP, ssrc=0x5678)
    try:
        uac, uas = _call(anchored, tmp_path, (CARRIER_IP, carrier.port), (PBX_IP, pbx.port))
        a_side, b_side = _exchange(carrier, pbx, uac, uas)
        assert a_side[0] == SBC_EXT_IP  # each end only ever sees the SBC in SDP
        assert b_side[0] == SBC_INT_IP
        assert len(pbx.received) >= 0.99 * PACKETS, len(pbx.received)
        assert len(carrier.received) >= 0.99 * PACKETS, len(carrier.received)
        assert {r.source for r in pbx.received} == {b_side}
        assert {r.source for r in carrier.received} == {a_side}
        assert {r.ssrc for r in pbx.received} == {carrier.ssrc}
        assert uac.wait(20).returncode == 0
        assert uas.wait(20).returncode == 0
    finally:
        carrier.close()
        pbx.close()


def test_natted_endpoint_gets_two_way_audio_after_latching(
    anchored: SbcProcess, tmp_path: Path
) -> None:
    """The carrier's SDP names an address nobody listens on (as a NATed
    phone's private address would); it really sends from another port."""
    unreachable = ("127.0.0.99", free_port("127.0.0.99"))
    carrier, pbx = RtpEndpoint(CARRIER_IP), RtpEndpoint(PBX_IP, ssrc=0x5678)
    try:
        uac, uas = _call(anchored, tmp_path, unreachable, (PBX_IP, pbx.port))
        a_side = sdp_media_address(uac.message_file, "SIP/2.0 200")
        b_side = sdp_media_address(uas.message_file, "INVITE ")
        carrier.send(a_side, PACKETS)  # from its real address: the SBC latches on it
        pbx.send(b_side, PACKETS)
        carrier.wait_for(int(0.9 * PACKETS))
        pbx.wait_for(PACKETS)
        assert len(pbx.received) >= 0.99 * PACKETS, len(pbx.received)
        # Until the first carrier packet, the relay sends to the SDP address;
        # after latching everything reaches the real source.
        assert len(carrier.received) >= 0.5 * PACKETS, len(carrier.received)
        assert uac.wait(20).returncode == 0
        assert uas.wait(20).returncode == 0
    finally:
        carrier.close()
        pbx.close()
