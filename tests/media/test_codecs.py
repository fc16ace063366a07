"""The codecs an answer settles on, as CDRs record them."""

from __future__ import annotations

from sbc.media.codecs import codecs_of


def test_rtpmap_names_static_payloads_and_rejected_streams() -> None:
    body = (
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        b"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
        b"m=audio 4002 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n"
    )
    assert codecs_of(body) == ("PCMA/8000", "PCMU/8000", "telephone-event/8000", "opus/48000")


def test_not_sdp_gives_nothing() -> None:
    assert codecs_of(b"") == ()
    assert codecs_of(b"\xff\xfe garbage\r\nm=audio\r\n") == ()
