"""Numbers in SDP from the wire: ``²`` passes ``str.isdigit`` but not ``int``,
and ``int`` refuses 5,000 digits. Each reader either skips the value or
refuses the SDP with a MediaError (488), never raises anything else."""

from __future__ import annotations

import pytest

from sbc.media.codec_negotiation import _ptime, read_formats
from sbc.media.dtmf_sdp import add_telephone_event, telephone_event
from sbc.media.interface import MediaError
from sbc.media.sdp_rewrite import read_media
from sbc.media.transcode.registry import create_codec
from sbc.sip.sdp import MediaDescription, parse_sdp

SUPER2 = "\u00b2"
HUGE = "9" * 5000

BODY = (
    "v=0\r\n"
    "o=- 1 1 IN IP4 192.0.2.5\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.5\r\n"
    "t=0 0\r\n"
    "m=audio 49170 RTP/AVP 0 96 {fmt}\r\n"
    "a=rtpmap:96 telephone-event/{clock}\r\n"
    "a=rtpmap:{fmt} opus/{clock}/2\r\n"
    "a=rtcp:{rtcp}\r\n"
    "a=ptime:{ptime}\r\n"
)


def media(
    fmt: str = "97", clock: str = "8000", rtcp: str = "53020", ptime: str = "20"
) -> MediaDescription:
    body = BODY.format(fmt=fmt, clock=clock, rtcp=rtcp, ptime=ptime)
    return parse_sdp(body.encode()).media[0]


@pytest.mark.parametrize("bad", [SUPER2, HUGE])
def test_formats_and_clocks_that_are_not_numbers_are_skipped(bad: str) -> None:
    formats = read_formats(media(fmt=bad))
    assert [f.payload for f in formats] == [0, 96]
    clocks = {f.payload: f.clock for f in read_formats(media(clock=bad))}
    assert clocks[96] == 0  # an rtpmap without a readable clock
    peer = read_media(media(fmt=bad), 0)
    assert [number for number, _ in peer.codecs] == [96]


@pytest.mark.parametrize("bad", [SUPER2, HUGE])
def test_unreadable_rtcp_port_is_a_488(bad: str) -> None:
    with pytest.raises(MediaError, match="a=rtcp") as info:
        read_media(media(rtcp=bad), 0)
    assert info.value.status == 488


@pytest.mark.parametrize("bad", [SUPER2, HUGE])
def test_telephone_event_with_an_unreadable_clock_or_number_is_ignored(bad: str) -> None:
    assert telephone_event(((96, f"telephone-event/{bad}"),)) is None
    stream = media(fmt=bad, clock=bad)
    assert add_telephone_event(stream) == 97  # 96 has no readable clock: a usable one


@pytest.mark.parametrize("bad", [SUPER2, HUGE])
def test_unreadable_ptime_and_bitrate_fall_back_to_defaults(bad: str) -> None:
    assert _ptime(media(ptime=bad)) is None
    codec = create_codec("opus", 20, {"maxaveragebitrate": bad}, None)
    assert codec is not None
